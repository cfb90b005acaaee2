//! `peagectl user`: submission accounts, their passwords (read from standard input, never
//! the command line or the environment) and the domains they may send as; and `peagectl
//! outbound identity`: the accounts locked for sending spam.

use std::io::BufRead;

use serde_json::json;

use peage_client::v1::{
    IdentityListRequest, IdentityLockRequest, IdentityUnlockRequest, UserListRequest,
    UserRemoveRequest, UserSetRequest,
};
use peage_client::ClientError;

use super::context::Ctx;
use crate::cli::{IdentityCmd, UserCmd};
use crate::output::{print_json, print_read_note, read_json};

/// One line of standard input, without its line end.
fn password_from_stdin() -> Result<String, ClientError> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("Password (shown as typed; pipe it in to keep it off the screen): ");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| ClientError::InvalidArgument(format!("cannot read the password: {e}")))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(ClientError::InvalidArgument(
            "no password on standard input".into(),
        ));
    }
    Ok(password)
}

pub async fn run(ctx: &mut Ctx, cmd: UserCmd) -> Result<(), ClientError> {
    match cmd {
        UserCmd::Add { login, domains } | UserCmd::Passwd { login, domains } => {
            let request = UserSetRequest {
                login,
                password: password_from_stdin()?,
                domains,
            };
            let login = request.login.clone();
            let reply = ctx.admin().await?.user_set(request).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            let what = if r.created { "created" } else { "updated" };
            println!("account {login} {what} (log index {})", r.log_index);
        }
        UserCmd::Rm { login } => {
            let reply = ctx
                .admin()
                .await?
                .user_remove(UserRemoveRequest {
                    login: login.clone(),
                })
                .await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            println!("account {login} removed (log index {})", r.log_index);
        }
        UserCmd::Ls => {
            let stale = ctx.stale;
            let reply = ctx
                .admin()
                .await?
                .user_list(UserListRequest { stale })
                .await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            if ctx.json {
                let users: Vec<_> = r
                    .users
                    .iter()
                    .map(|u| json!({"login": u.login, "domains": u.domains, "author": u.author, "created_at_ms": u.created_at_ms}))
                    .collect();
                print_json(json!({"users": users, "read": read_json(&r.read)}));
            } else {
                println!("{:<40}  {:<40}  AUTHOR", "LOGIN", "DOMAINS");
                for u in &r.users {
                    println!("{:<40}  {:<40}  {}", u.login, u.domains.join(","), u.author);
                }
                print_read_note(&r.read);
            }
        }
    }
    Ok(())
}

pub async fn identities(ctx: &mut Ctx, cmd: IdentityCmd) -> Result<(), ClientError> {
    let stale = ctx.stale;
    let admin = ctx.admin().await?;
    let reply = match cmd {
        IdentityCmd::Lock { login, reason } => {
            let r = admin
                .identity_lock(IdentityLockRequest { login, reason })
                .await;
            r.map(|r| format!("locked (log index {})", r.into_inner().log_index))
        }
        IdentityCmd::Unlock { login } => {
            let r = admin.identity_unlock(IdentityUnlockRequest { login }).await;
            r.map(|r| format!("unlocked (log index {})", r.into_inner().log_index))
        }
        IdentityCmd::Ls => {
            let r = admin.identity_list(IdentityListRequest { stale }).await;
            let r = r.map_err(|e| ctx.failed(e))?.into_inner();
            let until = |ms: i64| match ms {
                i64::MAX => "until unlocked".to_owned(),
                ms => ms.to_string(),
            };
            if ctx.json {
                let rows: Vec<_> = r
                    .identities
                    .iter()
                    .map(|l| json!({"login": l.login, "reason": l.reason, "locked_at_ms": l.locked_at_ms, "until_ms": l.until_ms, "locks": l.locks, "author": l.author}))
                    .collect();
                print_json(json!({"identities": rows, "read": read_json(&r.read)}));
            } else {
                println!(
                    "{:<32}  {:<5}  {:<24}  REASON",
                    "LOGIN", "LOCKS", "UNTIL (UNIX ms)"
                );
                for l in &r.identities {
                    println!(
                        "{:<32}  {:<5}  {:<24}  {}",
                        l.login,
                        l.locks,
                        until(l.until_ms),
                        l.reason
                    );
                }
                print_read_note(&r.read);
            }
            return Ok(());
        }
    };
    let text = reply.map_err(|e| ctx.failed(e))?;
    println!("{text}");
    Ok(())
}
