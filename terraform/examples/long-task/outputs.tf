output "function_name" {
  description = "The Lambda function."
  value       = module.task.function_name
}

output "api_id" {
  description = "The HTTP API's id."
  value       = module.api.api_id
}

output "invoke_url" {
  description = "Base URL of the API: curl -X POST \"$URL/tasks/sha-task\" -d '{\"mib\": 64, \"seed\": 7}'."
  value       = module.api.invoke_url
}

output "bucket_name" {
  description = "Checkpoint bucket (NIMBUS_STATE_BUCKET)."
  value       = module.state.bucket_name
}

output "table_name" {
  description = "Task table (NIMBUS_TASK_TABLE)."
  value       = module.state.table_name
}

output "queue_url" {
  description = "Continuation queue (NIMBUS_TASK_QUEUE_URL)."
  value       = module.state.queue_url
}

output "queue_arn" {
  description = "Continuation queue ARN (the event source mapping's source)."
  value       = module.state.queue_arn
}
