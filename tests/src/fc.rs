//! Function Compute 3.0's requests as a test client replays them: its documented header set for a custom
//! runtime (`tests/fixtures/fc/http-invoke-headers.txt`), with the control path and request id of each call.

/// Function Compute 3.0's documented header set for an HTTP-triggered request, as (name, value) pairs, without
/// `host` (a client sets its own: the listener's address).
pub fn documented_headers() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/fc/http-invoke-headers.txt");
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .filter(|(n, _)| n != "host")
        .collect()
}

/// The documented set with `x-fc-control-path` and `x-fc-request-id` replaced.
pub fn headers(control_path: &str, request_id: &str) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = documented_headers()
        .into_iter()
        .filter(|(n, _)| n != "x-fc-control-path" && n != "x-fc-request-id")
        .collect();
    h.push(("x-fc-control-path".into(), control_path.into()));
    h.push(("x-fc-request-id".into(), request_id.into()));
    h
}
