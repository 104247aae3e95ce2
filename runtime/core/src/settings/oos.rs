//! Where `oos` / `oos_path` config keys are fetched from on Alibaba Cloud: the OOS endpoint of the
//! function's region, and the credentials OOS calls are signed with. Function Compute sets `FC_REGION`
//! and the `ALIBABA_CLOUD_*` credentials of the function's role; elsewhere `ALIBABA_CLOUD_REGION_ID` names
//! the region. `NIMBUS_OOS_ENDPOINT` replaces the endpoint (a VPC endpoint, or a local stand-in).

use super::SettingsError;
use super::lambda::{blank_or, web_url};
use super::vars::Vars;
use crate::caps::config::AccessKey;
use std::borrow::Cow;

/// The variables read here that are not `NIMBUS_*` ones: [`Vars`] keeps them.
pub(super) const VARIABLES: [&str; 5] = [
    "FC_REGION",
    "ALIBABA_CLOUD_REGION_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
];

/// The OOS settings; `None`: unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OosSettings {
    /// `FC_REGION`, else `ALIBABA_CLOUD_REGION_ID`: the region whose OOS endpoint
    /// (`https://oos.{region}.aliyuncs.com`) is called.
    pub region: Option<String>,
    /// `NIMBUS_OOS_ENDPOINT`: the OOS endpoint to call instead (an `http://` or `https://` URL).
    pub endpoint: Option<String>,
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID` and `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (both, or neither), with
    /// `ALIBABA_CLOUD_SECURITY_TOKEN` for temporary credentials. Never printed: see [`AccessKey`].
    pub credentials: Option<AccessKey>,
}

impl OosSettings {
    pub(super) fn read(vars: &Vars) -> Result<OosSettings, SettingsError> {
        const ENDPOINT: &str = "an http:// or https:// URL such as https://oos-vpc.cn-hangzhou.aliyuncs.com";
        const REGION: &str = "a region id such as cn-hangzhou";
        const KEY: &str = "an AccessKey id, secret or security token";
        let region = |name: &'static str| {
            vars.parse_with(name, REGION, |v| {
                blank_or(v, |v| {
                    let ok = v
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                    if ok {
                        Ok(v.to_owned())
                    } else {
                        Err(Cow::Borrowed(REGION))
                    }
                })
            })
            .map(Option::flatten)
        };
        let fc_region = region("FC_REGION")?;
        let region_id = region("ALIBABA_CLOUD_REGION_ID")?;
        let id = vars.non_empty("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY)?;
        let secret = vars.non_empty("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY)?;
        let security_token = vars.non_empty("ALIBABA_CLOUD_SECURITY_TOKEN", KEY)?;
        Ok(OosSettings {
            region: fc_region.or(region_id),
            endpoint: vars
                .parse_with("NIMBUS_OOS_ENDPOINT", ENDPOINT, |v| {
                    blank_or(v, |v| web_url(v, ENDPOINT))
                })?
                .flatten(),
            credentials: match (id, secret) {
                (Some(id), Some(secret)) => Some(AccessKey {
                    id: id.trim().to_owned(),
                    secret: secret.trim().to_owned(),
                    security_token: security_token.map(|t| t.trim().to_owned()),
                }),
                _ => None,
            },
        })
    }
}
