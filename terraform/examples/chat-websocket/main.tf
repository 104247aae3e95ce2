# The chat function behind a WebSocket API, its rooms in the key-value table.
# Route keys and the route selection expression come from `chat.json` (the manifest's [function.chat.websocket]);
# the function may reach exactly this API's connections and exactly the `rooms` bucket of the table.

module "rooms" {
  source = "../../modules/keyvalue"

  name = "${var.name}-kv"
  tags = var.tags
}

module "api" {
  source = "../../modules/websocket-api"

  name                       = var.name
  function_name              = module.chat.function_name
  invoke_arn                 = module.chat.invoke_arn
  route_selection_expression = module.chat.websocket.route_selection_expression
  route_keys                 = module.chat.websocket.route_keys
  stage_name                 = var.stage_name
  tags                       = var.tags
}

module "chat" {
  source = "../../modules/function"

  description_file       = "${var.package_dir}/chat.json"
  function_name          = "${var.name}-chat"
  keyvalue               = module.rooms.function_input
  websocket_api          = module.api.function_input
  logging_config_enabled = var.logging_config_enabled
  tags                   = var.tags
}
