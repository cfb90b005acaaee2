//! `peagectl user`: submission accounts, their passwords (read from standard input, never
//! the command line or the environment) and the domains they may send as.

use std::io::BufRead;

use serde_json::json;

use peage_client::v1::{UserListRequest, UserRemoveRequest, UserSetRequest};
use peage_client::ClientError;

use super::context::Ctx;
use crate::cli::UserCmd;
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
