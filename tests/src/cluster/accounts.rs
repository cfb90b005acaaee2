//! A test cluster's submission accounts, made as an operator makes them: `peagectl user
//! add`, the password on standard input.

use super::TestCluster;

impl TestCluster {
    /// Creates the account `login`, sending as `domain`, with `password`.
    pub fn add_account(&self, login: &str, domain: &str, password: &str) -> anyhow::Result<()> {
        let args = ["user", "add", login, "--domain", domain];
        let out = self.peagectl_with_input(0, &args, &format!("{password}\n"));
        anyhow::ensure!(out.status.success(), "peagectl user add: {out:?}");
        Ok(())
    }
}
