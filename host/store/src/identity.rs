//! Who is acting: recorded with every run started and every alias moved,
//! on either backend, so that a team's shared store says who did what.

/// The configured user: `SLUICE_USER` when set (a team's names, a CI
/// job's), else the operating-system user at this host (`ann@laptop`).
pub fn user() -> String {
    user_from(
        std::env::var("SLUICE_USER").ok(),
        std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok(),
        &crate::metadata::hostname(),
    )
}

fn user_from(configured: Option<String>, os_user: Option<String>, host: &str) -> String {
    match configured {
        Some(user) if !user.trim().is_empty() => user.trim().to_string(),
        _ => format!("{}@{host}", os_user.as_deref().unwrap_or("unknown")),
    }
}

#[cfg(test)]
mod tests {
    use super::user_from;

    #[test]
    fn the_configured_user_is_sluice_user_else_user_at_host() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(user_from(s(" ann "), s("root"), "box"), "ann");
        assert_eq!(user_from(s(""), s("root"), "box"), "root@box");
        assert_eq!(user_from(None, s("bob"), "laptop"), "bob@laptop");
        assert_eq!(user_from(None, None, "laptop"), "unknown@laptop");
    }
}
