// Deploys Herald on Azure: Service Bus (queue, topic, subscription), Event Hubs (hub), a
// user-assigned managed identity with the data-sender roles on both (no keys), Key Vault for
// the API key and webhook secrets, PostgreSQL for the store (several replicas share it),
// Log Analytics, and an Azure Container Apps environment running Herald's image.
targetScope = 'resourceGroup'

@description('Prefix of every resource name (3-11 lower-case letters and digits).')
@minLength(3)
@maxLength(11)
param name string = 'herald'

@description('Azure region.')
param location string = resourceGroup().location

@description('Herald container image, e.g. myregistry.azurecr.io/herald:1.0.0.')
param image string

@description('Service Bus SKU (Standard is needed for topics; Premium for private networking).')
@allowed(['Standard', 'Premium'])
param serviceBusSku string = 'Standard'

@description('Event Hubs SKU.')
@allowed(['Standard', 'Premium'])
param eventHubsSku string = 'Standard'

@description('Replicas of Herald (they share the PostgreSQL store).')
@minValue(1)
@maxValue(10)
param replicas int = 2

@description('API key Herald accepts (full access). Stored in Key Vault only.')
@secure()
param heraldApiKey string

@description('Keys that encrypt endpoint secrets in the store: ID:BASE64 lines, comma-separated, the first encrypting (print one with `herald keys encryption`). Stored in Key Vault only. To rotate, deploy with the new key first and the old one after it.')
@secure()
param heraldEncryptionKeys string

@description('Administrator password of the PostgreSQL server. Stored in Key Vault only.')
@secure()
param postgresPassword string

@description('Object id of a user or group allowed to manage Key Vault secrets (optional).')
param keyVaultAdminObjectId string = ''

var suffix = uniqueString(resourceGroup().id, name)
var roles = {
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2552ae39'
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${name}-logs-${suffix}'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${name}-id-${suffix}'
  location: location
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: '${name}-sb-${suffix}'
  location: location
  sku: { name: serviceBusSku, tier: serviceBusSku }
  properties: {
    disableLocalAuth: true // Entra ID only: no SAS keys to leak
    minimumTlsVersion: '1.2'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: serviceBus
  name: 'herald-events'
  properties: {
    requiresDuplicateDetection: true // message-id = delivery id: retries are dropped
    duplicateDetectionHistoryTimeWindow: 'PT1H'
    deadLetteringOnMessageExpiration: true
    maxDeliveryCount: 10
  }
}

resource topic 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: serviceBus
  name: 'herald-topic'
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
  }
}

resource subscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = {
  parent: topic
  name: 'all'
  properties: {
    deadLetteringOnMessageExpiration: true
    maxDeliveryCount: 10
  }
}

resource eventHubs 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: '${name}-eh-${suffix}'
  location: location
  sku: { name: eventHubsSku, tier: eventHubsSku, capacity: 1 }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: eventHubs
  name: 'herald-hub'
  properties: {
    partitionCount: 2
    messageRetentionInDays: 1
  }
}

resource sbSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceBus.id, identity.id, roles.serviceBusDataSender)
  scope: serviceBus
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
  }
}

resource ehSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventHubs.id, identity.id, roles.eventHubsDataSender)
  scope: eventHubs
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataSender)
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Container Apps reads its secret references from this vault over the public endpoint; Key Vault's firewall does not let Container Apps through as a trusted service, and a private endpoint needs a VNet-integrated environment (see infra/README.md, hardening). Access is RBAC-only (no access policies), for Herald's identity alone.
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109: public network access stays on so Container Apps can resolve its Key Vault secret references without a VNet.
  name: '${name}kv${suffix}'
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
  }
}

resource apiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'herald-api-key'
  properties: {
    value: heraldApiKey
    contentType: 'text/plain'
    attributes: { exp: dateTimeToEpoch(dateTimeAdd(utcNow(), 'P1Y')) }
  }
}

resource encryptionKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'herald-encryption-keys'
  properties: {
    value: heraldEncryptionKeys
    contentType: 'text/plain'
    attributes: { exp: dateTimeToEpoch(dateTimeAdd(utcNow(), 'P1Y')) }
  }
}

resource postgres 'Microsoft.DBforPostgreSQL/flexibleServers@2023-12-01-preview' = {
  name: '${name}-pg-${suffix}'
  location: location
  sku: { name: 'Standard_B1ms', tier: 'Burstable' }
  properties: {
    version: '16'
    administratorLogin: 'herald'
    administratorLoginPassword: postgresPassword
    storage: { storageSizeGB: 32 }
    backup: { backupRetentionDays: 7, geoRedundantBackup: 'Disabled' }
    highAvailability: { mode: 'Disabled' }
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2023-12-01-preview' = {
  parent: postgres
  name: 'herald'
}

resource postgresAzureServices 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2023-12-01-preview' = {
  parent: postgres
  name: 'AllowAzureServices'
  properties: { startIpAddress: '0.0.0.0', endIpAddress: '0.0.0.0' }
}

resource storeUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'herald-store-url'
  properties: {
    value: 'postgres://herald:${uriComponent(postgresPassword)}@${postgres.properties.fullyQualifiedDomainName}:5432/herald?sslmode=require'
    contentType: 'text/plain'
    attributes: { exp: dateTimeToEpoch(dateTimeAdd(utcNow(), 'P1Y')) }
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

resource secretsAdmin 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(keyVaultAdminObjectId)) {
  name: guid(vault.id, keyVaultAdminObjectId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: keyVaultAdminObjectId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${name}-env-${suffix}'
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

// Herald's endpoints and subscriptions for the queue, topic and hub above, through the managed
// identity (no keys anywhere). Mounted into the container as /etc/herald/config/herald.toml; it
// holds no secret (the API key and store URL come from Key Vault as environment variables).
var heraldConfig = join([
  '[[endpoints]]'
  'name = "azure-queue"'
  'kind = "service_bus"'
  'namespace = "${serviceBus.name}.servicebus.windows.net"'
  'entity = "${queue.name}"'
  'credential = { type = "managed_identity", client_id = "${identity.properties.clientId}" }'
  'max_concurrency = 64'
  ''
  '[[endpoints]]'
  'name = "azure-topic"'
  'kind = "service_bus"'
  'namespace = "${serviceBus.name}.servicebus.windows.net"'
  'entity = "${topic.name}"'
  'credential = { type = "managed_identity", client_id = "${identity.properties.clientId}" }'
  'max_concurrency = 64'
  ''
  '[[endpoints]]'
  'name = "azure-hub"'
  'kind = "event_hubs"'
  'namespace = "${eventHubs.name}.servicebus.windows.net"'
  'entity = "${hub.name}"'
  'credential = { type = "managed_identity", client_id = "${identity.properties.clientId}" }'
  'max_concurrency = 64'
  ''
  '[[subscriptions]]'
  'name = "purchases-to-queue"'
  'event = "contoso_CustomerPurchase"'
  'endpoint = "azure-queue"'
  'amqp = { properties = ["Total", "Currency"] }'
  ''
  '[[subscriptions]]'
  'name = "purchases-to-topic"'
  'event = "contoso_CustomerPurchase"'
  'endpoint = "azure-topic"'
  'amqp = { properties = ["Total", "Currency"] }'
  ''
  '[[subscriptions]]'
  'name = "purchases-to-hub"'
  'event = "contoso_CustomerPurchase"'
  'endpoint = "azure-hub"'
  'amqp = { properties = ["Total"], partition_key = "CustomerId" }'
  ''
  '[[subscriptions]]'
  'name = "payments-to-queue"'
  'event = "contoso_VendorPaymentPosted"'
  'endpoint = "azure-queue"'
  'amqp = { properties = ["Amount", "VendorId"] }'
  ''
], '\n')

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: '${name}-app'
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  dependsOn: [secretsUser, sbSender, ehSender, database, postgresAzureServices]
  properties: {
    managedEnvironmentId: environment.id
    configuration: {
      ingress: {
        external: true
        targetPort: 8080
        transport: 'http'
        allowInsecure: false
      }
      secrets: [
        { name: 'api-key', keyVaultUrl: apiKeySecret.properties.secretUri, identity: identity.id }
        { name: 'store-url', keyVaultUrl: storeUrlSecret.properties.secretUri, identity: identity.id }
        { name: 'encryption-keys', keyVaultUrl: encryptionKeysSecret.properties.secretUri, identity: identity.id }
        // Not secret: a secret is how Container Apps mounts a file.
        { name: 'herald-config', value: heraldConfig }
      ]
    }
    template: {
      containers: [
        {
          name: 'herald'
          image: image
          args: ['serve', '--config', '/etc/herald/config/herald.toml']
          volumeMounts: [
            { volumeName: 'config', mountPath: '/etc/herald/config' }
          ]
          resources: { cpu: json('0.5'), memory: '1Gi' }
          env: [
            { name: 'HERALD_API_KEY', secretRef: 'api-key' }
            { name: 'HERALD_STORE_URL', secretRef: 'store-url' }
            { name: 'HERALD_ENCRYPTION_KEYS', secretRef: 'encryption-keys' }
            { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
          ]
          probes: [
            { type: 'Liveness', httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 10 }
            { type: 'Readiness', httpGet: { path: '/readyz', port: 8080 }, periodSeconds: 5 }
          ]
        }
      ]
      volumes: [
        {
          name: 'config'
          storageType: 'Secret'
          secrets: [ { secretRef: 'herald-config', path: 'herald.toml' } ]
        }
      ]
      scale: { minReplicas: replicas, maxReplicas: replicas }
    }
  }
}

@description('Herald\'s URL.')
output heraldUrl string = 'https://${app.properties.configuration.ingress.fqdn}'
@description('Service Bus namespace host (for Herald endpoints).')
output serviceBusHost string = '${serviceBus.name}.servicebus.windows.net'
@description('Event Hubs namespace host (for Herald endpoints).')
output eventHubsHost string = '${eventHubs.name}.servicebus.windows.net'
@description('Client id of Herald\'s managed identity.')
output identityClientId string = identity.properties.clientId
