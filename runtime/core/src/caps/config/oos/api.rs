//! The four OOS (API version 2019-06-01) operations the provider calls, as query parameters, and their
//! answers parsed: `GetParameters` / `GetSecretParameters` (by name, at most [`BATCH`] names per call) and
//! `GetParametersByPath` / `GetSecretParametersByPath` (paginated with `NextToken` / `MaxResults`).
//! OOS is an RPC-style API: every call is `POST /` with its parameters in the query and no body.

use std::collections::BTreeMap;

/// The OOS API version every call names (`x-acs-version`).
pub const VERSION: &str = "2019-06-01";

/// `GetParameters` and `GetSecretParameters` take at most this many names per call.
pub const BATCH: usize = 10;

/// `MaxResults` of the by-path calls: OOS's largest page.
pub const PAGE: u32 = 10;

/// One OOS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call<'a> {
    /// Parameters by name; secret ones decrypted when `secret`.
    ByName {
        /// `GetSecretParameters` rather than `GetParameters`.
        secret: bool,
        /// At most [`BATCH`] names.
        names: &'a [String],
    },
    /// Every parameter under a path, recursively, one page.
    ByPath {
        /// `GetSecretParametersByPath` rather than `GetParametersByPath`.
        secret: bool,
        /// The path, as OOS writes it (`/shop/db`, no trailing `/`).
        path: &'a str,
        /// The previous page's `NextToken`.
        next_token: Option<&'a str>,
    },
}

impl Call<'_> {
    /// The action (`x-acs-action`).
    pub fn action(&self) -> &'static str {
        match self {
            Call::ByName { secret: false, .. } => "GetParameters",
            Call::ByName { secret: true, .. } => "GetSecretParameters",
            Call::ByPath { secret: false, .. } => "GetParametersByPath",
            Call::ByPath { secret: true, .. } => "GetSecretParametersByPath",
        }
    }

    /// The query parameters, unencoded.
    pub fn query(&self, region: Option<&str>) -> BTreeMap<String, String> {
        let mut q = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            q.insert(k.to_string(), v);
        };
        if let Some(r) = region {
            put("RegionId", r.to_string());
        }
        match self {
            Call::ByName { secret, names } => {
                // A JSON array of names: what OOS's `Names` takes.
                put("Names", serde_json::Value::from(names.to_vec()).to_string());
                if *secret {
                    put("WithDecryption", "true".into());
                }
            }
            Call::ByPath {
                secret,
                path,
                next_token,
            } => {
                put("Path", path.to_string());
                put("Recursive", "true".into());
                put("MaxResults", PAGE.to_string());
                if let Some(t) = next_token {
                    put("NextToken", t.to_string());
                }
                if *secret {
                    put("WithDecryption", "true".into());
                }
            }
        }
        q
    }
}

/// One parameter of an answer (the fields the provider uses; OOS sends many more).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    /// The full name.
    pub name: String,
    /// The value (decrypted, for a secret parameter asked `WithDecryption`).
    #[serde(default)]
    pub value: Option<String>,
}

/// The answer of any of the four calls: the parameters found, the names OOS did not find (by-name calls),
/// and the next page's token (by-path calls).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Answer {
    /// Parameters found.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Names that are not parameters of this kind (or do not exist).
    #[serde(default)]
    pub invalid_parameters: Vec<String>,
    /// The next page, if any.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// The body of an error answer: `{"RequestId", "HostId", "Code", "Message", "Recommend"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    /// What failed, e.g. `SignatureDoesNotMatch`, `InvalidSecurityToken.Expired`.
    #[serde(default)]
    pub code: Option<String>,
    /// Why, in words.
    #[serde(default)]
    pub message: Option<String>,
    /// The request id, for Alibaba Cloud's support.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Answer {
    /// The page's token, unless it is the last page (no token, or an empty one).
    pub fn next(&self) -> Option<&str> {
        self.next_token.as_deref().filter(|t| !t.is_empty())
    }

    /// Name to value of the parameters that carry a value.
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.parameters
            .iter()
            .filter_map(|p| Some((p.name.as_str(), p.value.as_deref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `GetParameters` answer with the fields the OOS API reference (api-oos-2019-06-01-getparameters)
    /// lists, shaped like its sample (including the sample's odd `InvalidParameters` element).
    const GET_PARAMETERS: &str = r#"{
      "RequestId": "25B2D9A3-A1B2-4A2C-9C8D-6C7CA9A0B5D4",
      "InvalidParameters": ["[ \"InvalidParameter\"]"],
      "Parameters": [
        {
          "Type": "String",
          "UpdatedDate": "2020-09-01T08:01:43Z",
          "UpdatedBy": "root(1309208528360047)",
          "Tags": {"k1": "v1", "k2": "v2"},
          "Value": "parameter",
          "Description": "parameter",
          "Constraints": "{\"AllowedValues\":[\"parameter\"]}",
          "ResourceGroupId": "rg-acfmxsn4m4******",
          "CreatedBy": "root(1309208528360047)",
          "CreatedDate": "2020-09-01T08:01:43Z",
          "ParameterVersion": 1,
          "Name": "MyParameter",
          "Id": "p-4c4c78d8a7784b13a3f3",
          "ShareType": "Public"
        }
      ]
    }"#;

    /// `GetSecretParameters`' sample response, as the OOS API reference (api-oos-2019-06-01-getsecretparameters,
    /// help.aliyun.com document 187614) prints it.
    const GET_SECRET_PARAMETERS: &str = r#"{
      "RequestId": "A5320F1D-92D9-44BB-A416-5FC525ED6D57",
      "InvalidParameters": ["[ \"InvalidSecretParameter\"]"],
      "Parameters": [
        {
          "Type": "Secret",
          "UpdatedDate": "2020-10-22T03:11:13Z",
          "UpdatedBy": "root(130900000)",
          "KeyId": "ssh-bp67acfmxazb4p****",
          "Tags": {"k1": "v1", "k2": "v2"},
          "Value": "secretParameter,secretParameter1",
          "Description": "secretParameter",
          "Constraints": "{\\\"AllowedValues\\\": [\\\"test\\\"]}",
          "ResourceGroupId": "rg-acfmxsn4m4******",
          "CreatedBy": "root(130900000)",
          "CreatedDate": "2020-10-22T03:11:13Z",
          "ParameterVersion": 1,
          "Name": "MySecretParameter",
          "Id": "p-7cdc0000000000000000"
        }
      ]
    }"#;

    /// A `GetSecretParametersByPath` page with a `NextToken`, with the fields and sample values the OOS API
    /// reference (api-oos-2019-06-01-getsecretparametersbypath) lists.
    const GET_SECRET_PARAMETERS_BY_PATH: &str = r#"{
      "NextToken": "gAAAAABfTgv5ewUWmNdJ3g7JVLvX70sPH90GZOVGC",
      "RequestId": "B8244A5F-EF4D-4E0C-A1B4-F8C0C7FE2A5C",
      "MaxResults": 10,
      "TotalCount": 2,
      "Parameters": [
        {
          "Type": "Secret",
          "UpdatedDate": "2020-09-01T09:28:47Z",
          "UpdatedBy": "root(1309208528360047)",
          "KeyId": "80e9409f-78fa-42ab-84bd-83f40c081d7a",
          "Tags": {"k1": "v1", "k2": "v2"},
          "Value": "secretParameter",
          "Description": "SecretParameter",
          "Constraints": "{\"AllowedValues\":[\"secretParameter\"]}",
          "CreatedBy": "root(1309208528360047)",
          "CreatedDate": "2020-09-01T09:28:47Z",
          "ParameterVersion": 1,
          "Name": "/path/path1/MySecretParameter",
          "Id": "p-c7dd7ddcb3c94d438f32"
        }
      ]
    }"#;

    /// `GetParametersByPath`' last page: no `NextToken`.
    const GET_PARAMETERS_BY_PATH_LAST: &str = r#"{
      "RequestId": "13B7F6D2-4F1F-41E2-B5C5-5D7C8F2F2F6A",
      "MaxResults": 10,
      "TotalCount": 1,
      "Parameters": [
        {"Type": "String", "Value": "parameter", "Name": "/path/path1/MyParameter", "ParameterVersion": 1}
      ]
    }"#;

    /// An error answer as OOS's gateway sends it (HTTP 400).
    const SIGNATURE_ERROR: &str = r#"{
      "RequestId": "0B0D9C4C-6D42-5C37-9B13-5D1F3A7A8E20",
      "HostId": "oos.cn-hangzhou.aliyuncs.com",
      "Code": "SignatureDoesNotMatch",
      "Message": "Specified signature does not match our calculation.",
      "Recommend": "https://api.aliyun.com/troubleshoot?q=SignatureDoesNotMatch&product=oos"
    }"#;

    #[test]
    fn by_name_answers_parse() {
        let a: Answer = serde_json::from_str(GET_PARAMETERS).unwrap();
        assert_eq!(a.values().collect::<Vec<_>>(), [("MyParameter", "parameter")]);
        assert_eq!(a.invalid_parameters.len(), 1);
        assert_eq!(a.next(), None);
        let a: Answer = serde_json::from_str(GET_SECRET_PARAMETERS).unwrap();
        assert_eq!(
            a.values().collect::<Vec<_>>(),
            [("MySecretParameter", "secretParameter,secretParameter1")]
        );
    }

    #[test]
    fn by_path_answers_parse_with_and_without_a_next_page() {
        let a: Answer = serde_json::from_str(GET_SECRET_PARAMETERS_BY_PATH).unwrap();
        assert_eq!(a.next(), Some("gAAAAABfTgv5ewUWmNdJ3g7JVLvX70sPH90GZOVGC"));
        assert_eq!(
            a.values().collect::<Vec<_>>(),
            [("/path/path1/MySecretParameter", "secretParameter")]
        );
        let a: Answer = serde_json::from_str(GET_PARAMETERS_BY_PATH_LAST).unwrap();
        assert_eq!(a.next(), None);
        let empty_token: Answer = serde_json::from_str(r#"{"Parameters": [], "NextToken": ""}"#).unwrap();
        assert_eq!(empty_token.next(), None, "an empty NextToken is the last page");
    }

    #[test]
    fn error_bodies_parse() {
        let e: ErrorBody = serde_json::from_str(SIGNATURE_ERROR).unwrap();
        assert_eq!(e.code.as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(
            e.message.as_deref(),
            Some("Specified signature does not match our calculation.")
        );
        assert_eq!(e.request_id.as_deref(), Some("0B0D9C4C-6D42-5C37-9B13-5D1F3A7A8E20"));
    }

    #[test]
    fn calls_carry_their_parameters() {
        let names = vec!["/shop/a".to_string(), "b".to_string()];
        let plain = Call::ByName {
            secret: false,
            names: &names,
        };
        assert_eq!(plain.action(), "GetParameters");
        let q = plain.query(Some("cn-hangzhou"));
        assert_eq!(q["Names"], r#"["/shop/a","b"]"#);
        assert_eq!(q["RegionId"], "cn-hangzhou");
        assert!(!q.contains_key("WithDecryption"));
        let secret = Call::ByName {
            secret: true,
            names: &names,
        };
        assert_eq!(secret.action(), "GetSecretParameters");
        assert_eq!(secret.query(None)["WithDecryption"], "true");
        let page = Call::ByPath {
            secret: true,
            path: "/shop/db",
            next_token: Some("t2"),
        };
        assert_eq!(page.action(), "GetSecretParametersByPath");
        let q = page.query(None);
        assert_eq!(
            q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            [
                "MaxResults=10",
                "NextToken=t2",
                "Path=/shop/db",
                "Recursive=true",
                "WithDecryption=true"
            ]
        );
    }
}
