//! Rule management of a subscription (as `$management` add-rule, remove-rule and
//! enumerate-rules serve it): rules added and removed at run time, journaled like messages.

use super::{Broker, BrokerError, Op, RuleSpec};

/// Service Bus's limit of rules per subscription (and so of copies one message can make).
const MAX_RULES: usize = 2000;

impl Broker {
    fn subscription_rules(
        &mut self,
        topic: &str,
        sub: &str,
    ) -> Result<&mut Vec<RuleSpec>, BrokerError> {
        self.topics
            .get_mut(topic)
            .and_then(|t| t.get_mut(sub))
            .map(|s| &mut s.rules)
            .ok_or_else(|| BrokerError::NotFound(format!("{topic}/Subscriptions/{sub}")))
    }

    /// The rules of a subscription, in the order they were added.
    pub fn rules(&self, topic: &str, sub: &str) -> Result<Vec<RuleSpec>, BrokerError> {
        self.topics
            .get(topic)
            .and_then(|t| t.get(sub))
            .map(|s| s.rules.clone())
            .ok_or_else(|| BrokerError::NotFound(format!("{topic}/Subscriptions/{sub}")))
    }

    /// Adds a rule; its name must be new in the subscription (names compare ignoring case).
    pub fn add_rule(&mut self, topic: &str, sub: &str, rule: RuleSpec) -> Result<(), BrokerError> {
        let rules = self.subscription_rules(topic, sub)?;
        if rules.len() >= MAX_RULES {
            return Err(BrokerError::NotAllowed(format!(
                "a subscription has at most {MAX_RULES} rules"
            )));
        }
        if rules
            .iter()
            .any(|r| r.name.eq_ignore_ascii_case(&rule.name))
        {
            return Err(BrokerError::AlreadyExists(format!(
                "the rule '{}' already exists on {topic}/Subscriptions/{sub}",
                rule.name
            )));
        }
        rules.push(rule.clone());
        self.journal
            .push(Op::AddRule(topic.to_owned(), sub.to_owned(), rule));
        Ok(())
    }

    /// Removes a rule by name.
    pub fn remove_rule(&mut self, topic: &str, sub: &str, name: &str) -> Result<(), BrokerError> {
        let rules = self.subscription_rules(topic, sub)?;
        let before = rules.len();
        rules.retain(|r| !r.name.eq_ignore_ascii_case(name));
        if rules.len() == before {
            return Err(BrokerError::NotFound(format!(
                "the rule '{name}' does not exist on {topic}/Subscriptions/{sub}"
            )));
        }
        self.journal.push(Op::RemoveRule(
            topic.to_owned(),
            sub.to_owned(),
            name.to_owned(),
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::filter::{Action, Filter};
    use super::super::Topology;
    use super::*;

    #[test]
    fn rules_added_and_removed_survive_a_journal_replay() {
        let mut b = Broker::new(&Topology::builtin(), 0);
        let mut r = RuleSpec::new("big", Filter::sql("Total > 100").expect("sql"));
        r.action = Some(Action::sql("SET Tier = 'gold'").expect("action"));
        b.add_rule("topic1", "subscription1", r.clone())
            .expect("added");
        assert!(matches!(
            b.add_rule("topic1", "subscription1", r.clone()),
            Err(BrokerError::AlreadyExists(_))
        ));
        b.remove_rule("topic1", "subscription1", "$Default")
            .expect("removed");
        assert!(matches!(
            b.remove_rule("topic1", "subscription1", "$Default"),
            Err(BrokerError::NotFound(_))
        ));
        let ops = b.drain_journal();
        let json: Vec<String> = ops
            .iter()
            .map(|o| serde_json::to_string(o).expect("serializes"))
            .collect();
        let mut again = Broker::new(&Topology::builtin(), 0);
        for line in json {
            again.replay(serde_json::from_str(&line).expect("reads back"), 0);
        }
        assert_eq!(again.rules("topic1", "subscription1"), Ok(vec![r]));
    }
}
