# A durable long task: the sha-task function, its state (checkpoint bucket, task table, continuation queue)
# and an HTTP API to start tasks (`POST /tasks/sha-task`) and read their status (`GET /tasks/sha-task/{id}`).
# The continuation queue feeds the function through an event source mapping the function module creates.

module "state" {
  source = "../../modules/durable-state"

  name                     = var.name
  function_timeout_seconds = jsondecode(file("${var.package_dir}/sha-task.json")).timeout_seconds
  enforce_tls              = var.enforce_tls
  force_destroy            = var.force_destroy
  tags                     = var.tags
}

module "task" {
  source = "../../modules/function"

  description_file       = "${var.package_dir}/sha-task.json"
  function_name          = "${var.name}-sha-task"
  durable_state          = module.state.function_input
  logging_config_enabled = var.logging_config_enabled
  tags                   = var.tags
}

module "api" {
  source = "../../modules/http-api"

  name = var.name
  functions = {
    sha-task = {
      function_name = module.task.function_name
      invoke_arn    = module.task.invoke_arn
      routes        = module.task.routes
    }
  }
  tags = var.tags
}
