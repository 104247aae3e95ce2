output "function_name" {
  description = "The Lambda function."
  value       = module.hello.function_name
}

output "api_id" {
  description = "The HTTP API's id."
  value       = module.api.api_id
}

output "invoke_url" {
  description = "Base URL of the API: curl \"$URL/hello?name=you\"."
  value       = module.api.invoke_url
}

output "route_keys" {
  description = "Routes published."
  value       = module.api.route_keys
}
