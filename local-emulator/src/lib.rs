//! The local emulator: Azure Service Bus and Event Hubs over AMQP 1.0, and a webhook sink.
//! Filled in by the emulator issue; empty until then.
