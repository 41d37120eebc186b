//! The last hour's activity, counted per minute, as the overview and the endpoint pages chart it.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::pages::PageError;
use crate::api::AppState;
use crate::model::{minute_of, ActivityRow, Counts, EndpointId};

/// Minutes the charts cover.
const MINUTES: i64 = 60;

/// The activity of the last hour (its minutes up to now), read once per page.
pub struct LastHour {
    first: i64,
    rows: Vec<ActivityRow>,
}

impl LastHour {
    /// Reads the last hour's rows.
    pub async fn read(state: &AppState) -> Result<LastHour, PageError> {
        let first = minute_of(OffsetDateTime::now_utc()) - MINUTES + 1;
        let rows = state.store.console().activity(first).await?;
        Ok(LastHour { first, rows })
    }

    /// The counts per minute (oldest first) of the rows `keep` takes, and their sum.
    pub fn minutes(&self, keep: impl Fn(&ActivityRow) -> bool) -> (Vec<Counts>, Counts) {
        let mut minutes = vec![Counts::default(); MINUTES as usize];
        let mut hour = Counts::default();
        for r in self.rows.iter().filter(|r| keep(r)) {
            if let Some(slot) = usize::try_from(r.minute - self.first)
                .ok()
                .and_then(|i| minutes.get_mut(i))
            {
                slot.add(&r.counts);
            }
            hour.add(&r.counts);
        }
        (minutes, hour)
    }

    /// The hour's counts by endpoint.
    pub fn by_endpoint(&self) -> HashMap<EndpointId, Counts> {
        let mut out: HashMap<EndpointId, Counts> = HashMap::new();
        for r in &self.rows {
            if let Some(id) = r.endpoint_id {
                out.entry(id).or_default().add(&r.counts);
            }
        }
        out
    }
}
