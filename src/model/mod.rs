//! The ground floor: the data every stage shares — ids, catalog definitions, events,
//! deliveries and attempts, endpoints, subscriptions. Plain data and pure functions over it,
//! no I/O; every other module imports it and none of them is imported by it.

pub mod activity;
pub mod definition;
pub mod delivery;
pub mod endpoint;
pub mod event;
pub mod exchange;
pub mod grant;
pub mod health;
pub mod ids;
pub mod name;
pub mod plugin;
pub mod scope;
pub mod subscription;
pub mod table;

pub use activity::{minute_of, ActivityRow, Browse, BrowsePage, Counts, Cursor};
pub use definition::{
    AllowedSteps, Category, EventDefinition, EventKind, ParamType, Parameter, PicklistOption,
    Solution,
};
pub use delivery::{
    Attempt, AttemptOutcome, AttemptResult, Delivery, DeliveryQuery, DeliveryStatus,
    LeasedDelivery, NextState, ReplayFilter, RoutedResult,
};
pub use endpoint::{
    AzureCredential, AzureSettings, CustomHeader, DestinationSettings, Endpoint, EndpointKind,
    PluginSettings, PublicKey, RateLimit, Scheme, Secret, SecretError, SecretString, SigningSecret,
    Validation, WebhookAuth, WebhookSettings,
};
pub use event::{
    Bodies, Event, IngestOutcome, NewDelivery, NewEvent, OutgoingEvent, ParamChange, Pipeline,
    Routed,
};
pub use exchange::Exchange;
pub use grant::{Grant, GrantState, HandshakeAnswer};
pub use health::{EndpointHealth, HealthNotice, HealthState, Notice, OPERATIONAL_SOLUTION};
pub use ids::{
    DeliveryId, EndpointId, EventId, IdParseError, PrefixedId, SecretId, SubscriptionId,
};
pub use name::{EventName, EventNameError};
pub use plugin::{NewPluginVersion, PluginVersion};
pub use scope::Scope;
pub use subscription::{
    AmqpOptions, Condition, Filter, MessageFormat, Mode, Op, Stage, Subscription, Transform,
};
pub use table::{
    row_event_name, Column, ImageKind, ImageRegistration, RowEvent, RowImages, RowMessage,
    RowOptions, TableDefinition,
};
