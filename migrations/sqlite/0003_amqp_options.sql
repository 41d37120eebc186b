-- How a subscription's events become AMQP messages (Service Bus, Event Hubs): parameters
-- copied into application properties, session id and partition key parameters, time to live.
ALTER TABLE subscriptions ADD COLUMN amqp TEXT NOT NULL DEFAULT '{}';
