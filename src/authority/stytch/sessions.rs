//! A user's sessions at Stytch, for "sign out other devices": `GET /v1/sessions`
//! (B2B `GET /v1/b2b/sessions`), read as stytch-node 14 types them
//! (`SessionsGetRequest` / `SessionsGetResponse` in `lib/b2c/sessions.ts`,
//! `B2BSessionsGetRequest` / `B2BSessionsGetResponse` in `lib/b2b/sessions.ts`).

use serde::Deserialize;

use super::{error_from, StytchAuthority, MAX_RESPONSE_BYTES};
use crate::error::{AuthError, AuthErrorKind};
use crate::http_client;
use crate::profile::StytchSessionObject;
use crate::session::{Session, TokenKind};

/// Most sessions read from one answer: a user with more is not a person.
const MAX_LISTED: usize = 1_000;

/// The consumer answer names its list `sessions`, the B2B one `member_sessions`.
#[derive(Deserialize)]
struct SessionsResponse {
    sessions: Option<Vec<StytchSessionObject>>,
    member_sessions: Option<Vec<StytchSessionObject>>,
}

impl StytchAuthority {
    /// `GET {base}/v1/sessions?user_id=` (B2B
    /// `GET {base}/v1/b2b/sessions?organization_id=&member_id=`): the live sessions
    /// of `owner`'s user, each checked to be that user's (and organization's).
    pub(super) async fn list_sessions(&self, owner: &Session) -> Result<Vec<Session>, AuthError> {
        super::super::refuse_misconfigured(self.check_settings())?;
        // `…/sessions/authenticate` → `…/sessions`: the same base and API family.
        let url = self.authenticate_url.strip_suffix("/authenticate").unwrap_or(&self.authenticate_url);
        let mut query: Vec<(&str, &str)> = Vec::with_capacity(2);
        if self.b2b {
            let Some(organization) = owner.organization() else {
                return Err(AuthError::with_detail(AuthErrorKind::MissingClaim, "B2B session without organization"));
            };
            query.push(("organization_id", &organization.id));
            query.push(("member_id", owner.subject()));
        } else {
            query.push(("user_id", owner.subject()));
        }
        // Percent-encoded by `Url`: ids are the issuer's, but never spliced raw.
        let url = reqwest::Url::parse_with_params(url, &query)
            .map_err(|_| AuthError::with_detail(AuthErrorKind::AuthorityUnavailable, "unusable sessions URL"))?;
        let response = self
            .http
            .send(|client| client.get(url.clone()).basic_auth(&self.project_id, Some(self.secret.expose())))
            .await?;
        let status = response.status();
        let body = http_client::read_body(response, MAX_RESPONSE_BYTES, AuthErrorKind::AuthorityResponse).await?;
        if !status.is_success() {
            return Err(error_from(status, &body));
        }
        let parsed: SessionsResponse = serde_json::from_slice(&body)
            .map_err(|_| AuthError::with_detail(AuthErrorKind::AuthorityResponse, "not a Stytch sessions list"))?;
        let listed = if self.b2b { parsed.member_sessions } else { parsed.sessions };
        let listed =
            listed.ok_or_else(|| AuthError::with_detail(AuthErrorKind::AuthorityResponse, "no sessions list"))?;
        let mut sessions = Vec::with_capacity(listed.len().min(MAX_LISTED));
        for raw in listed.into_iter().take(MAX_LISTED) {
            let session = self.session(raw, None, TokenKind::Opaque)?;
            // Never trust the list to be about the user asked for: a session of
            // someone else here could be revoked "as one of mine".
            let same_org = owner.organization().map(|o| &o.id) == session.organization().map(|o| &o.id);
            if session.subject() != owner.subject() || !same_org || session.session_id().is_none() {
                return Err(AuthError::with_detail(
                    AuthErrorKind::AuthorityResponse,
                    "the sessions list holds a session of another user",
                ));
            }
            sessions.push(session);
        }
        Ok(sessions)
    }
}
