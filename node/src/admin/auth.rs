//! Bearer tokens with roles: `admin` may write, `quarantine-reader` may read message bodies
//! too, `read-only` reads records and settings only. The token's name is recorded as the
//! author of the writes made with it.

use tonic::{Request, Status};

use crate::config::{Role, TokenConfig};
use crate::secret::constant_time_eq;

#[derive(Clone)]
pub struct Tokens {
    tokens: Vec<TokenConfig>,
}

impl Tokens {
    pub fn new(tokens: &[TokenConfig]) -> Tokens {
        Tokens {
            tokens: tokens.to_vec(),
        }
    }

    /// Checks the request's bearer token for `needed`; returns the token's name.
    pub fn authorize<T>(&self, req: &Request<T>, needed: Role) -> Result<String, Status> {
        let header = req.metadata().get("authorization").ok_or_else(|| {
            Status::unauthenticated("missing bearer token (authorization header)")
        })?;
        let header = header
            .to_str()
            .map_err(|_| Status::unauthenticated("malformed authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("authorization header is not `Bearer <token>`")
            })?;
        // Every configured token is compared, in constant time, so timing tells nothing.
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(t.token.as_bytes(), token.trim().as_bytes()) {
                found = Some(t);
            }
        }
        let t = found.ok_or_else(|| Status::unauthenticated("invalid token"))?;
        if t.role < needed {
            let why = match needed {
                Role::Admin => "this request writes, or reads outgoing mail,",
                _ => "this request reads a message body",
            };
            return Err(Status::permission_denied(format!(
                "token `{}` is {}; {why} and needs a {} token",
                t.name,
                t.role.as_str(),
                needed.as_str()
            )));
        }
        Ok(t.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[
            TokenConfig {
                name: "ops".into(),
                token: "admin-token-0123456789".into(),
                role: Role::Admin,
            },
            TokenConfig {
                name: "grafana".into(),
                token: "reader-token-0123456789".into(),
                role: Role::ReadOnly,
            },
            TokenConfig {
                name: "helpdesk".into(),
                token: "helpdesk-token-0123456789".into(),
                role: Role::QuarantineReader,
            },
        ])
    }

    fn req(token: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(t) = token {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        r
    }

    #[test]
    fn roles_are_enforced() {
        let t = tokens();
        assert_eq!(
            t.authorize(&req(Some("admin-token-0123456789")), Role::Admin)
                .unwrap(),
            "ops"
        );
        assert_eq!(
            t.authorize(&req(Some("reader-token-0123456789")), Role::ReadOnly)
                .unwrap(),
            "grafana"
        );
        let e = t
            .authorize(&req(Some("reader-token-0123456789")), Role::Admin)
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let e = t
            .authorize(&req(Some("wrong")), Role::ReadOnly)
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let e = t.authorize(&req(None), Role::ReadOnly).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn bodies_need_a_quarantine_reader_or_an_admin() {
        let t = tokens();
        let e = t
            .authorize(
                &req(Some("reader-token-0123456789")),
                Role::QuarantineReader,
            )
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message().contains("reads a message body"),
            "{}",
            e.message()
        );
        for (token, name) in [
            ("helpdesk-token-0123456789", "helpdesk"),
            ("admin-token-0123456789", "ops"),
        ] {
            let who = t.authorize(&req(Some(token)), Role::QuarantineReader);
            assert_eq!(who.unwrap(), name);
        }
        let e = t
            .authorize(&req(Some("helpdesk-token-0123456789")), Role::Admin)
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "no writes");
    }
}
