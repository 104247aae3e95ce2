resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the caller's choice (log_retention_in_days, up to 3653 days); the Nimbus default is 30 days, not a year, for cost
  name              = local.log_group_name
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_layer_version" "runtime" {
  count = local.create_layer ? 1 : 0

  layer_name               = "${local.function_name}-runtime"
  description              = "Nimbus runtime (bootstrap) for ${local.architecture}"
  filename                 = local.layer_zip_path
  source_code_hash         = local.d.packages.layer_sha256
  compatible_runtimes      = ["provided.al2023"]
  compatible_architectures = [local.architecture]
}

locals {
  layer_arn = var.package_type != "layer" ? null : (local.create_layer ? aws_lambda_layer_version.runtime[0].arn : var.layer_arn)
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:Nimbus functions call AWS APIs and their allowed outbound hosts directly; VPC placement needs subnets, NAT and endpoints the caller owns and is out of this module's scope
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and signed zips, which `nimbus package` does not produce; the deployed zip is pinned by its SHA-256 (source_code_hash) instead
  function_name                  = local.function_name
  description                    = "Nimbus ${local.d.kind} function ${local.d.function} of ${local.d.app}"
  role                           = aws_iam_role.this.arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [local.architecture]
  filename                       = var.package_type == "zip" ? local.zip_path : local.code_zip_path
  source_code_hash               = var.package_type == "zip" ? local.d.packages.zip_sha256 : local.d.packages.code_zip_sha256
  layers                         = local.layer_arn == null ? [] : [local.layer_arn]
  memory_size                    = local.memory_size
  timeout                        = local.timeout
  reserved_concurrent_executions = var.reserved_concurrent_executions
  kms_key_arn                    = var.kms_key_arn

  dynamic "environment" {
    for_each = length(local.environment) > 0 ? [local.environment] : []

    content {
      variables = environment.value
    }
  }

  tracing_config {
    mode = var.tracing_mode
  }

  dynamic "logging_config" {
    for_each = var.logging_config_enabled ? [local.log_group_name] : []

    content {
      log_format = "JSON"
      log_group  = logging_config.value
    }
  }

  dynamic "dead_letter_config" {
    for_each = var.dead_letter_target_arn == null ? [] : [var.dead_letter_target_arn]

    content {
      target_arn = dead_letter_config.value
    }
  }

  tags = var.tags

  # The log group exists (with its retention) before the first invocation could create it, and the role's
  # permissions are in place before the function can run.
  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]

  lifecycle {
    precondition {
      condition     = length(local.description_missing_keys) == 0 || local.d.format != local.supported_format
      error_message = "${var.description_file} lacks the keys ${join(", ", local.description_missing_keys)} that format ${local.supported_format} always has: write it again with `nimbus package`."
    }
    precondition {
      condition     = local.d.format == local.supported_format
      error_message = "${var.description_file} has format \"${local.d.format}\"; this module reads \"${local.supported_format}\". Use the module version that matches your `nimbus` CLI, or package again with a matching CLI."
    }
    precondition {
      condition     = contains(local.kinds, local.d.kind)
      error_message = "${var.description_file}: unknown function kind \"${local.d.kind}\" (expected one of ${join(", ", local.kinds)})."
    }
    precondition {
      condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", local.function_name))
      error_message = "Function name \"${local.function_name}\" is not a valid Lambda function name (1-64 letters, digits, - or _): set function_name."
    }
    precondition {
      condition     = contains(["x86_64", "arm64"], local.d.architecture) && local.architecture == local.d.architecture
      error_message = "Function ${local.function_name}: architecture = \"${local.architecture}\", but the package holds a bootstrap for ${local.d.architecture} (${var.description_file}). Remove the architecture input, or package for it: `nimbus package --target lambda --arch ${local.architecture}` and use dist/lambda-${local.architecture}/."
    }
    precondition {
      condition     = length(local.missing_package_files) == 0
      error_message = "Function ${local.function_name}: package file(s) not found beside the description: ${join(", ", local.missing_package_files)}. Run `nimbus package` again into that directory."
    }
    precondition {
      condition     = var.layer_arn == null || var.package_type == "layer"
      error_message = "Function ${local.function_name}: layer_arn is only used with package_type = \"layer\" (the zip package carries its own bootstrap)."
    }
    precondition {
      condition     = length(local.missing_ssm) == 0
      error_message = "Function ${local.function_name} reads SSM parameter(s) ${join(", ", local.missing_ssm)} that are not in ssm_parameters. Create them (e.g. in the config module) and pass their names, e.g. ssm_parameters = module.config.names, or add the names of parameters managed elsewhere."
    }
    precondition {
      condition     = !local.uses_keyvalue || var.keyvalue != null
      error_message = "Function ${local.function_name} declares key-value buckets (${join(", ", local.d.keyvalue_buckets)}) but no keyvalue table was given: set keyvalue = module.<keyvalue>.function_input."
    }
    precondition {
      condition     = !local.is_task || var.durable_state != null
      error_message = "Function ${local.function_name} is a task function: it needs durable_state (its checkpoint bucket, task table and continuation queue): set durable_state = module.<durable-state>.function_input."
    }
    precondition {
      condition     = local.is_task || var.durable_state == null
      error_message = "Function ${local.function_name} is a ${local.d.kind} function, not a task function: remove durable_state (it would wire a continuation queue to a function that cannot run tasks)."
    }
    precondition {
      condition     = !local.is_task || try(var.durable_state.visibility_timeout_seconds, null) == null || try(var.durable_state.visibility_timeout_seconds >= local.timeout + 3, false)
      error_message = "Function ${local.function_name}: the continuation queue's visibility timeout (${coalesce(try(var.durable_state.visibility_timeout_seconds, null), 0)} s) must be at least the function timeout + 3 s (${local.timeout + 3} s): raise it or lower timeout."
    }
    precondition {
      condition     = local.d.kind != "websocket" || var.websocket_api != null
      error_message = "Function ${local.function_name} is a websocket function: it needs websocket_api (where its sends go): set websocket_api = module.<websocket-api>.function_input."
    }
    precondition {
      condition     = length(local.missing_env) == 0
      error_message = "Function ${local.function_name} requires environment variable(s) ${join(", ", local.missing_env)} (config keys with `env = ...`, required and without default): add them to environment."
    }
    precondition {
      condition     = length(local.environment_collisions) == 0
      error_message = "Function ${local.function_name}: environment sets ${join(", ", local.environment_collisions)}, which this module sets itself from its inputs: remove them from environment (use log_level for NIMBUS_LOG)."
    }
  }
}

resource "aws_lambda_function_url" "this" {
  count = var.create_function_url ? 1 : 0

  function_name      = aws_lambda_function.this.function_name
  authorization_type = var.function_url_authorization_type
}

# Continuations of the function's tasks: one record per invocation; records another run holds come back
# through batchItemFailures after the queue's visibility timeout.
resource "aws_lambda_event_source_mapping" "this" {
  count = local.is_task && var.durable_state != null ? 1 : 0

  event_source_arn        = var.durable_state.queue_arn
  function_name           = aws_lambda_function.this.arn
  batch_size              = 1
  function_response_types = ["ReportBatchItemFailures"]
  enabled                 = true
  tags                    = var.tags

  # Creating an SQS mapping checks that the role may receive from the queue.
  depends_on = [aws_iam_role_policy.this]
}
