//! Herald: cataloged business events, stored durably and delivered to subscribers.
