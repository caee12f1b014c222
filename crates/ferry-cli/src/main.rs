//! The headless `ferry` command.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("ferry: the engine is not built yet; see README.md for what runs today")
}
