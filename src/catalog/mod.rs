//! The event catalog: solutions, categories and event definitions, loaded from a folder of
//! TOML files ("catalog as code"), checked, and queried by ingestion and subscriptions.

mod load;
mod params;
mod schema;

use std::collections::HashMap;
use std::sync::Arc;

pub use crate::model::definition::schema_url;
use crate::model::{Category, EventDefinition, Solution, TableDefinition};
pub use load::{load_dir, load_texts, CatalogError, CatalogProblem};
pub use params::{validate, validate_response, ParamProblem};
pub use schema::{event_schema, DIALECT};

/// A checked catalog. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    solutions: Vec<Solution>,
    categories: Vec<Category>,
    events: HashMap<String, EventDefinition>,
    tables: Vec<TableDefinition>,
}

impl Catalog {
    fn new(
        solutions: Vec<Solution>,
        categories: Vec<Category>,
        events: Vec<EventDefinition>,
        tables: Vec<TableDefinition>,
    ) -> Self {
        let events = events
            .into_iter()
            .map(|e| (e.unique_name.to_string(), e))
            .collect();
        Self {
            inner: Arc::new(Inner {
                solutions,
                categories,
                events,
                tables,
            }),
        }
    }

    /// The demo catalog that ships with Herald (`catalog/contoso.toml`).
    pub fn demo() -> Self {
        let text = include_str!("../../catalog/contoso.toml");
        load_texts(&[("catalog/contoso.toml".into(), text.to_owned())])
            .expect("the demo catalog shipped in the binary is valid (checked by a unit test)")
    }

    /// All solutions.
    pub fn solutions(&self) -> &[Solution] {
        &self.inner.solutions
    }

    /// All categories.
    pub fn categories(&self) -> &[Category] {
        &self.inner.categories
    }

    /// A cataloged event (one assigned to a category) by unique name. Definitions that are
    /// not cataloged cannot be invoked or subscribed to, as in Dataverse.
    pub fn cataloged(&self, unique_name: &str) -> Option<&EventDefinition> {
        self.inner
            .events
            .get(unique_name)
            .filter(|e| e.category.is_some())
    }

    /// The cataloged events of a category, sorted by name.
    pub fn events_in(&self, solution: &str, category: &str) -> Vec<&EventDefinition> {
        let mut events: Vec<_> = self
            .inner
            .events
            .values()
            .filter(|e| e.solution == solution && e.category.as_deref() == Some(category))
            .collect();
        events.sort_by(|a, b| a.unique_name.cmp(&b.unique_name));
        events
    }

    /// The cataloged tables.
    pub fn tables(&self) -> &[TableDefinition] {
        &self.inner.tables
    }

    /// The cataloged table called `logical_name`.
    pub fn table(&self, logical_name: &str) -> Option<&TableDefinition> {
        self.inner
            .tables
            .iter()
            .find(|t| t.logical_name == logical_name)
    }

    /// Whether `category` is a category of `solution`.
    pub fn has_category(&self, solution: &str, category: &str) -> bool {
        self.inner
            .categories
            .iter()
            .any(|c| c.solution == solution && c.name == category)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_valid_and_catalogs_both_scenarios() {
        let c = Catalog::demo();
        let purchase = c.cataloged("contoso_CustomerPurchase").unwrap();
        assert_eq!(purchase.category.as_deref(), Some("Sales"));
        let payment = c.cataloged("contoso_VendorPaymentPosted").unwrap();
        assert_eq!(payment.category.as_deref(), Some("Finance"));
        assert!(purchase.external && payment.external);
    }
}
