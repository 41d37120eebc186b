//! Which solutions a caller acts in, and the one rule of what that lets it reach: events,
//! deliveries and subscriptions of those solutions, and the endpoints that those solutions
//! are tied to. Every query of the registry and the store that a caller can reach takes a
//! scope, so no route can forget the rule; this module only says it, without I/O.

/// The solutions a caller acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every solution: a key of `solutions = ["*"]`, the configuration, Herald itself.
    All,
    /// These solutions only (possibly none).
    Solutions(Vec<String>),
}

impl Scope {
    /// A scope of `solutions` (`None`: every solution).
    pub fn of(solutions: Option<&[String]>) -> Self {
        match solutions {
            None => Scope::All,
            Some(s) => Scope::Solutions(s.to_vec()),
        }
    }

    /// Whether it covers `solution`.
    pub fn covers(&self, solution: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Solutions(s) => s.iter().any(|x| x == solution),
        }
    }

    /// Its solutions, `None` for every solution.
    pub fn solutions(&self) -> Option<&[String]> {
        match self {
            Scope::All => None,
            Scope::Solutions(s) => Some(s),
        }
    }

    /// Whether it sees an endpoint tied to `tied` (the solutions of the subscriptions that
    /// deliver to it and of the key that made it): when it covers one of them. An endpoint
    /// tied to no solution (made by configuration or a key of every solution, not yet
    /// subscribed) is seen by scopes of every solution only.
    pub fn sees(&self, tied: &[String]) -> bool {
        match self {
            Scope::All => true,
            Scope::Solutions(_) => tied.iter().any(|t| self.covers(t)),
        }
    }

    /// Whether it may change an endpoint tied to `tied`: when it covers all of them, so
    /// that no solution's receiver is changed by a key of another.
    pub fn may_change(&self, tied: &[String]) -> bool {
        match self {
            Scope::All => true,
            Scope::Solutions(_) => !tied.is_empty() && tied.iter().all(|t| self.covers(t)),
        }
    }

    /// The solutions an endpoint it makes is tied to: none for a scope of every solution.
    pub fn owners(&self) -> Vec<String> {
        match self {
            Scope::All => Vec::new(),
            Scope::Solutions(s) => s.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_scope_of_some_solutions_covers_those_only() {
        let contoso = Scope::Solutions(of(&["contoso"]));
        assert!(contoso.covers("contoso"));
        assert!(!contoso.covers("fabrikam"));
        assert!(!contoso.covers("herald"));
        assert!(Scope::All.covers("fabrikam"));
        assert!(!Scope::Solutions(Vec::new()).covers("contoso"));
    }

    #[test]
    fn an_endpoint_is_seen_by_any_of_its_solutions_and_changed_only_by_all_of_them() {
        let contoso = Scope::Solutions(of(&["contoso"]));
        let both = Scope::Solutions(of(&["contoso", "fabrikam"]));
        let shared = of(&["contoso", "fabrikam"]);
        assert!(contoso.sees(&shared) && !contoso.may_change(&shared));
        assert!(both.sees(&shared) && both.may_change(&shared));
        assert!(!contoso.sees(&of(&["fabrikam"])));
        assert!(contoso.may_change(&of(&["contoso"])));
    }

    #[test]
    fn an_endpoint_tied_to_no_solution_is_only_for_keys_of_every_solution() {
        let contoso = Scope::Solutions(of(&["contoso"]));
        assert!(!contoso.sees(&[]) && !contoso.may_change(&[]));
        assert!(Scope::All.sees(&[]) && Scope::All.may_change(&[]));
        assert_eq!(contoso.owners(), of(&["contoso"]));
        assert!(Scope::All.owners().is_empty());
    }
}
