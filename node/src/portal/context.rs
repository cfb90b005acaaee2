//! What the portal's requests share: the admin service they act through, the session's
//! length and the cookie's name.

use std::sync::Arc;
use std::time::Duration;

use crate::admin::AdminService;

/// The cookie the session lives in.
pub const SESSION_COOKIE: &str = "peage_session";

/// What the handlers share.
#[derive(Clone)]
pub struct Portal {
    pub(crate) admin: Arc<AdminService>,
    /// How long a session lasts after the link was opened.
    pub(crate) session: Duration,
}

impl Portal {
    pub fn new(admin: Arc<AdminService>, session: Duration) -> Portal {
        Portal { admin, session }
    }
}
