output "function_name" {
  description = "The Lambda function."
  value       = module.chat.function_name
}

output "api_id" {
  description = "The WebSocket API's id."
  value       = module.api.api_id
}

output "websocket_url" {
  description = "Connect here: websocat \"$URL\"."
  value       = module.api.invoke_url
}

output "management_endpoint" {
  description = "Where the function sends to connections (NIMBUS_WEBSOCKET_ENDPOINT)."
  value       = module.api.management_endpoint
}

output "table_name" {
  description = "The key-value table (NIMBUS_KV_TABLE)."
  value       = module.rooms.table_name
}
