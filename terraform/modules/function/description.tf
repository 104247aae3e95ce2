# The function description written by `nimbus package` (format "nimbus.function/1", see the README).
# Every field is read through try() with a neutral default, so a file of another format or shape reaches the
# preconditions in lambda.tf (which name the problem) instead of failing on an attribute lookup.

locals {
  supported_format = "nimbus.function/1"
  description_dir  = dirname(var.description_file)
  raw              = jsondecode(file(var.description_file))

  description_keys = [
    "format", "app", "function", "kind", "architecture", "runtime", "handler", "timeout_seconds", "memory_mb",
    "instance_memory_mb", "reuse", "packages", "routes", "websocket", "task", "ssm_parameters", "ssm_paths",
    "env_vars", "keyvalue_buckets", "outbound_hosts",
  ]
  description_missing_keys = [for k in local.description_keys : k if !contains(try(keys(local.raw), []), k)]

  d = {
    format          = try(tostring(local.raw.format), "")
    app             = try(coalesce(tostring(local.raw.app)), "")
    function        = try(tostring(local.raw["function"]), "")
    kind            = try(tostring(local.raw.kind), "")
    architecture    = try(tostring(local.raw.architecture), "")
    timeout_seconds = try(tonumber(local.raw.timeout_seconds), 3)
    memory_mb       = try(tonumber(local.raw.memory_mb), 128)
    packages = {
      zip             = try(tostring(local.raw.packages.zip), "")
      zip_sha256      = try(tostring(local.raw.packages.zip_sha256), "")
      code_zip        = try(tostring(local.raw.packages.code_zip), "")
      code_zip_sha256 = try(tostring(local.raw.packages.code_zip_sha256), "")
      layer_zip       = try(tostring(local.raw.packages.layer_zip), "")
      layer_sha256    = try(tostring(local.raw.packages.layer_zip_sha256), "")
    }
    routes           = try([for r in local.raw.routes : tostring(r)], [])
    ssm_parameters   = try(sort(distinct([for n in local.raw.ssm_parameters : tostring(n)])), [])
    ssm_paths        = try(sort(distinct([for p in local.raw.ssm_paths : tostring(p)])), [])
    env_vars         = try([for e in local.raw.env_vars : { name = tostring(e.name), required = tobool(e.required) }], [])
    keyvalue_buckets = try(sort(distinct([for b in local.raw.keyvalue_buckets : tostring(b)])), [])
  }
  description_websocket = try(local.raw.websocket, null)

  kinds = ["http", "event", "task", "websocket"]

  function_name = coalesce(var.function_name, local.d.app == "" ? local.d.function : "${local.d.app}-${local.d.function}")
  architecture  = coalesce(var.architecture, local.d.architecture, "x86_64")
  memory_size   = coalesce(var.memory_size, local.d.memory_mb)
  timeout       = coalesce(var.timeout, local.d.timeout_seconds)

  is_task         = local.d.kind == "task"
  uses_keyvalue   = length(local.d.keyvalue_buckets) > 0
  uses_ssm        = length(local.d.ssm_parameters) + length(local.d.ssm_paths) > 0
  missing_ssm     = sort(tolist(setsubtract(local.d.ssm_parameters, var.ssm_parameters)))
  required_env    = [for e in local.d.env_vars : e.name if e.required]
  lambda_env_keys = ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "_X_AMZN_TRACE_ID", "TZ"]
  missing_env     = [for n in local.required_env : n if !contains(concat(keys(local.environment), local.lambda_env_keys), n)]

  # Packages: paths relative to the description's directory; hashes precomputed by `nimbus package`
  # (base64 SHA-256, what filebase64sha256 would give), so nothing is read or built at apply.
  zip_path       = "${local.description_dir}/${local.d.packages.zip}"
  code_zip_path  = "${local.description_dir}/${local.d.packages.code_zip}"
  layer_zip_path = "${local.description_dir}/${local.d.packages.layer_zip}"
  create_layer   = var.package_type == "layer" && var.layer_arn == null
  package_files = var.package_type == "zip" ? [local.zip_path] : (
    local.create_layer ? [local.code_zip_path, local.layer_zip_path] : [local.code_zip_path]
  )
  missing_package_files = [for f in local.package_files : f if !fileexists(f)]

  # Environment: the module's variables win over var.environment; a collision is a precondition error.
  module_environment = merge(
    local.is_task && var.durable_state != null ? tomap({
      NIMBUS_STATE_BUCKET   = var.durable_state.bucket_name
      NIMBUS_TASK_TABLE     = var.durable_state.table_name
      NIMBUS_TASK_QUEUE_URL = var.durable_state.queue_url
    }) : tomap({}),
    local.uses_keyvalue && var.keyvalue != null ? tomap({ NIMBUS_KV_TABLE = var.keyvalue.table_name }) : tomap({}),
    var.websocket_api != null ? tomap({ NIMBUS_WEBSOCKET_ENDPOINT = var.websocket_api.management_endpoint }) : tomap({}),
    var.log_level != null ? tomap({ NIMBUS_LOG = var.log_level }) : tomap({}),
  )
  environment_collisions = sort(tolist(setintersection(keys(var.environment), keys(local.module_environment))))
  environment            = merge(var.environment, local.module_environment)
}
