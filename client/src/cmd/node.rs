//! `peagectl node add|promote|remove`: membership changes, through the leader.

use peage_client::v1::{AddLearnerRequest, PromoteVoterRequest, RemoveNodeRequest};
use peage_client::ClientError;

use super::context::Ctx;
use crate::cli::NodeCmd;

pub async fn run(ctx: &mut Ctx, cmd: NodeCmd) -> Result<(), ClientError> {
    let admin = ctx.admin().await?;
    let reply = match cmd {
        NodeCmd::Add {
            node_id,
            peer,
            admin: admin_addr,
            site,
        } => {
            let add = AddLearnerRequest {
                node_id,
                peer_addr: peer,
                admin_addr,
                site,
            };
            admin.add_learner(add).await
        }
        NodeCmd::Promote { node_id } => admin.promote_voter(PromoteVoterRequest { node_id }).await,
        NodeCmd::Remove { node_id } => admin.remove_node(RemoveNodeRequest { node_id }).await,
    };
    let reply = reply.map_err(|e| ctx.failed(e))?.into_inner();
    println!("membership changed at log index {}", reply.log_index);
    for m in reply.members {
        println!(
            "  node {} ({}) {}",
            m.node_id,
            m.site,
            if m.voter { "voter" } else { "learner" }
        );
    }
    Ok(())
}
