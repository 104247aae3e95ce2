# Plan-only tests with the real provider (no API is called at plan: credentials and the account lookup are
# skipped, the three identity data sources are overridden), so the inline policy is RENDERED by
# aws_iam_policy_document and the assertions read the JSON IAM would get.

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  skip_requesting_account_id  = true
}

override_data {
  target = data.aws_caller_identity.current
  values = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/terraform"
    user_id    = "AIDAEXAMPLE"
  }
}

override_data {
  target = data.aws_region.current
  values = { name = "us-east-1" }
}

override_data {
  target = data.aws_partition.current
  values = { partition = "aws", dns_suffix = "amazonaws.com" }
}

variables {
  durable = {
    bucket_name = "fixtures-state"
    bucket_arn  = "arn:aws:s3:::fixtures-state"
    table_name  = "fixtures-tasks"
    table_arn   = "arn:aws:dynamodb:us-east-1:123456789012:table/fixtures-tasks"
    queue_url   = "https://sqs.us-east-1.amazonaws.com/123456789012/fixtures-sha-task"
    queue_arn   = "arn:aws:sqs:us-east-1:123456789012:fixtures-sha-task"
  }
  kv = {
    table_name = "fixtures-kv"
    table_arn  = "arn:aws:dynamodb:us-east-1:123456789012:table/fixtures-kv"
  }
  ws = {
    execution_arn       = "arn:aws:execute-api:us-east-1:123456789012:abc123"
    stage_name          = "live"
    management_endpoint = "https://abc123.execute-api.us-east-1.amazonaws.com/live"
  }
}

run "http_function_gets_logs_and_xray_only" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    tags             = { team = "platform" }
  }

  assert {
    condition     = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == ["Logs", "XRay"]
    error_message = "An HTTP function without declared capabilities gets exactly the Logs and XRay statements."
  }
  assert {
    condition = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : flatten([s.Resource]) if s.Sid == "Logs"][0] == [
      "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/fixtures-hello:*",
    ]
    error_message = "Logs is granted on the function's own log group only."
  }
  assert {
    condition     = alltrue([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid == "XRay" || !anytrue([for r in flatten([s.Resource]) : r == "*"])])
    error_message = "No statement but XRay has a \"*\" resource."
  }
  assert {
    condition     = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : sort(flatten([s.Action])) if s.Sid == "XRay"][0]) == jsonencode(["xray:PutTelemetryRecords", "xray:PutTraceSegments"])
    error_message = "XRay grants exactly PutTraceSegments and PutTelemetryRecords."
  }
  assert {
    condition     = aws_lambda_function.this.function_name == "fixtures-hello" && aws_iam_role.this.name == "fixtures-hello"
    error_message = "The default name is <app>-<function>."
  }
  assert {
    condition = (aws_lambda_function.this.runtime == "provided.al2023" && aws_lambda_function.this.handler == "bootstrap" &&
      aws_lambda_function.this.architectures == tolist(["x86_64"]) && aws_lambda_function.this.memory_size == 192 &&
    aws_lambda_function.this.timeout == 10)
    error_message = "Runtime, handler, architecture, memory and timeout come from the description."
  }
  assert {
    condition = (endswith(aws_lambda_function.this.filename, "tests/fixtures/hello.zip") &&
    aws_lambda_function.this.source_code_hash == jsondecode(file("tests/fixtures/hello.json")).packages.zip_sha256)
    error_message = "The zip package and its precomputed hash are deployed."
  }
  assert {
    condition     = aws_lambda_function.this.source_code_hash == filebase64sha256("tests/fixtures/hello.zip")
    error_message = "The fixture's hash is the zip's filebase64sha256 (regenerate the fixtures)."
  }
  assert {
    condition     = length(aws_lambda_function.this.environment) == 0 && length(output.environment) == 0
    error_message = "No capability, no environment."
  }
  assert {
    condition     = aws_cloudwatch_log_group.this.name == "/aws/lambda/fixtures-hello" && aws_cloudwatch_log_group.this.retention_in_days == 30
    error_message = "The module creates the function's log group with a 30-day retention."
  }
  assert {
    condition = (aws_lambda_function.this.logging_config[0].log_format == "JSON" &&
    aws_lambda_function.this.logging_config[0].log_group == "/aws/lambda/fixtures-hello")
    error_message = "logging_config: JSON into the module's log group."
  }
  assert {
    condition     = aws_lambda_function.this.tracing_config[0].mode == "Active"
    error_message = "Tracing is Active by default."
  }
  assert {
    condition = (aws_lambda_function.this.tags == tomap({ team = "platform" }) && aws_iam_role.this.tags == tomap({ team = "platform" }) &&
    aws_cloudwatch_log_group.this.tags == tomap({ team = "platform" }))
    error_message = "Tags go on every resource that takes them."
  }
  assert {
    condition     = length(aws_lambda_event_source_mapping.this) == 0 && length(aws_lambda_function_url.this) == 0 && length(aws_lambda_layer_version.runtime) == 0
    error_message = "No mapping, URL or layer unless asked for."
  }
  assert {
    condition     = output.routes == ["GET /hello", "ANY /hello/{rest+}"] && output.kind == "http" && output.websocket == null
    error_message = "Routes, kind and websocket are passed through from the description."
  }
}

run "passthrough_tracing_drops_xray" {
  command = plan

  variables {
    description_file       = "tests/fixtures/hello.json"
    tracing_mode           = "PassThrough"
    logging_config_enabled = false
    function_name          = "custom-name"
  }

  assert {
    condition     = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == ["Logs"]
    error_message = "Without Active tracing there is no XRay statement, so no \"*\" at all."
  }
  assert {
    condition     = aws_cloudwatch_log_group.this.name == "/aws/lambda/custom-name" && aws_lambda_function.this.function_name == "custom-name"
    error_message = "function_name names the function and its log group."
  }
}

run "event_function_gets_exactly_its_ssm_parameters_and_paths" {
  command = plan

  variables {
    description_file = "tests/fixtures/ingest.json"
    ssm_parameters   = ["/fixtures/api-token", "/fixtures/db-url", "/fixtures/unused"]
    ssm_kms_key_arns = ["arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"]
    environment      = { UPSTREAM_URL = "https://upstream.example.com", NIMBUS_METRICS = "emf" }
    log_level        = "debug"
  }

  assert {
    condition     = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == ["Logs", "XRay", "SsmParameters", "SsmPaths", "SsmDecrypt"]
    error_message = "An event function with SSM keys gets Logs, XRay and the three SSM statements, nothing else."
  }
  assert {
    condition = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : {
      a = flatten([s.Action]), r = sort(flatten([s.Resource])) } if s.Sid == "SsmParameters"][0]) == jsonencode({
      a = ["ssm:GetParameters"]
      r = ["arn:aws:ssm:us-east-1:123456789012:parameter/fixtures/api-token", "arn:aws:ssm:us-east-1:123456789012:parameter/fixtures/db-url"]
    })
    error_message = "GetParameters on exactly the declared parameters (not on other names in ssm_parameters)."
  }
  assert {
    condition = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : {
      a = flatten([s.Action]), r = sort(flatten([s.Resource])) } if s.Sid == "SsmPaths"][0]) == jsonencode({
      a = ["ssm:GetParametersByPath"]
      r = [
        "arn:aws:ssm:us-east-1:123456789012:parameter/fixtures/db",
        "arn:aws:ssm:us-east-1:123456789012:parameter/fixtures/db/*",
        "arn:aws:ssm:us-east-1:123456789012:parameter/shared/flags",
        "arn:aws:ssm:us-east-1:123456789012:parameter/shared/flags/*",
      ]
    })
    error_message = "GetParametersByPath on each declared path and what is under it."
  }
  assert {
    condition = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : {
      a = flatten([s.Action]), r = flatten([s.Resource]), c = s.Condition } if s.Sid == "SsmDecrypt"][0]) == jsonencode({
      a = ["kms:Decrypt"]
      r = ["arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"]
      c = { StringEquals = { "kms:ViaService" = "ssm.us-east-1.amazonaws.com" } }
    })
    error_message = "kms:Decrypt on the SecureStrings' key, through SSM only."
  }
  assert {
    condition     = alltrue([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid == "XRay" || !anytrue([for r in flatten([s.Resource]) : r == "*"])])
    error_message = "No statement but XRay has a \"*\" resource."
  }
  assert {
    condition = aws_lambda_function.this.environment[0].variables == tomap({
      UPSTREAM_URL   = "https://upstream.example.com"
      NIMBUS_METRICS = "emf"
      NIMBUS_LOG     = "debug"
    })
    error_message = "User variables plus NIMBUS_LOG from log_level, nothing else."
  }
}

run "ssm_decrypt_needs_keys_and_declared_ssm" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    ssm_kms_key_arns = ["arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"]
    ssm_parameters   = ["/fixtures/api-token"]
  }

  assert {
    condition     = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == ["Logs", "XRay"]
    error_message = "A function that declares no SSM key gets no SSM statement, whatever the inputs hold."
  }
}

run "task_function_gets_its_state_and_the_continuation_mapping" {
  command = plan

  variables {
    description_file = "tests/fixtures/sha-task.json"
    durable_state    = merge(var.durable, { kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/state", visibility_timeout_seconds = 30 })
  }

  assert {
    condition     = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == ["Logs", "XRay", "TaskCheckpoints", "TaskRecords", "TaskQueue", "StateKey"]
    error_message = "A task function gets the three task statements and the state key, nothing else."
  }
  assert {
    condition = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : {
      a = sort(flatten([s.Action])), r = flatten([s.Resource]) } if s.Sid == "TaskCheckpoints"][0]) == jsonencode({
      a = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
      r = ["arn:aws:s3:::fixtures-state/tasks/*"]
    })
    error_message = "Checkpoints: Put/Get/DeleteObject under tasks/ of the state bucket only."
  }
  assert {
    condition = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : {
      a = sort(flatten([s.Action])), r = flatten([s.Resource]) } if s.Sid == "TaskRecords"][0]) == jsonencode({
      a = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
      r = ["arn:aws:dynamodb:us-east-1:123456789012:table/fixtures-tasks"]
    })
    error_message = "Task records: Get/Put/UpdateItem on the task table only."
  }
  assert {
    condition = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : {
      a = sort(flatten([s.Action])), r = flatten([s.Resource]) } if s.Sid == "TaskQueue"][0]) == jsonencode({
      a = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"]
      r = ["arn:aws:sqs:us-east-1:123456789012:fixtures-sha-task"]
    })
    error_message = "Continuations: the five SQS actions on the function's own queue only."
  }
  assert {
    condition = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : {
      a = sort(flatten([s.Action])), r = flatten([s.Resource]), c = s.Condition } if s.Sid == "StateKey"][0]) == jsonencode({
      a = ["kms:Decrypt", "kms:GenerateDataKey"]
      r = ["arn:aws:kms:us-east-1:123456789012:key/state"]
      c = { StringEquals = { "kms:ViaService" = ["dynamodb.us-east-1.amazonaws.com", "s3.us-east-1.amazonaws.com", "sqs.us-east-1.amazonaws.com"] } }
    })
    error_message = "The state key: Decrypt/GenerateDataKey through S3, DynamoDB and SQS only."
  }
  assert {
    condition = (aws_lambda_event_source_mapping.this[0].batch_size == 1 &&
      aws_lambda_event_source_mapping.this[0].function_response_types == toset(["ReportBatchItemFailures"]) &&
    aws_lambda_event_source_mapping.this[0].event_source_arn == "arn:aws:sqs:us-east-1:123456789012:fixtures-sha-task")
    error_message = "The continuation queue is mapped with batch size 1 and ReportBatchItemFailures."
  }
  assert {
    condition = aws_lambda_function.this.environment[0].variables == tomap({
      NIMBUS_STATE_BUCKET   = "fixtures-state"
      NIMBUS_TASK_TABLE     = "fixtures-tasks"
      NIMBUS_TASK_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/fixtures-sha-task"
    })
    error_message = "A task function gets the three NIMBUS_* state variables."
  }
}

run "task_function_without_state_key_has_no_state_key_statement" {
  command = plan

  variables {
    description_file = "tests/fixtures/sha-task.json"
    durable_state    = var.durable
  }

  assert {
    condition     = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == ["Logs", "XRay", "TaskCheckpoints", "TaskRecords", "TaskQueue"]
    error_message = "No KMS key, no StateKey statement."
  }
}

run "websocket_function_with_keyvalue" {
  command = plan

  variables {
    description_file = "tests/fixtures/chat.json"
    websocket_api    = var.ws
    keyvalue         = merge(var.kv, { kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/kv" })
  }

  assert {
    condition     = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == ["Logs", "XRay", "KeyValue", "KeyValueKey", "ManageConnections"]
    error_message = "A websocket function with buckets gets KeyValue, its key and ManageConnections, nothing else."
  }
  assert {
    condition = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : {
      a = sort(flatten([s.Action])), r = flatten([s.Resource]), c = s.Condition } if s.Sid == "KeyValue"][0]) == jsonencode({
      a = ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
      r = ["arn:aws:dynamodb:us-east-1:123456789012:table/fixtures-kv"]
      c = { "ForAllValues:StringEquals" = { "dynamodb:LeadingKeys" = ["presence", "rooms"] } }
    })
    error_message = "Key-value: the four item actions on the table, limited to the declared buckets (partition keys)."
  }
  assert {
    condition = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : {
      a = flatten([s.Action]), r = sort(flatten([s.Resource])) } if s.Sid == "ManageConnections"][0]) == jsonencode({
      a = ["execute-api:ManageConnections"]
      r = [
        "arn:aws:execute-api:us-east-1:123456789012:abc123/live/DELETE/@connections/*",
        "arn:aws:execute-api:us-east-1:123456789012:abc123/live/POST/@connections/*",
      ]
    })
    error_message = "ManageConnections on its own API's stage only: POST and DELETE @connections."
  }
  assert {
    condition = jsonencode([for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Condition if s.Sid == "KeyValueKey"][0]) == jsonencode({
      StringEquals = { "kms:ViaService" = "dynamodb.us-east-1.amazonaws.com" }
    })
    error_message = "The key-value table's key is usable through DynamoDB only."
  }
  assert {
    condition = aws_lambda_function.this.environment[0].variables == tomap({
      NIMBUS_KV_TABLE           = "fixtures-kv"
      NIMBUS_WEBSOCKET_ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com/live"
    })
    error_message = "NIMBUS_KV_TABLE and NIMBUS_WEBSOCKET_ENDPOINT are set."
  }
  assert {
    condition     = output.websocket.route_selection_expression == "$request.body.action" && length(output.websocket.route_keys) == 6
    error_message = "The description's websocket object is passed through."
  }
}

run "keyvalue_and_websocket_inputs_without_declaration_grant_nothing" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    keyvalue         = var.kv
  }

  assert {
    condition     = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == ["Logs", "XRay"]
    error_message = "A function that declares no bucket gets no KeyValue statement even when a table is passed."
  }
  assert {
    condition     = length(output.environment) == 0
    error_message = "A function that declares no bucket gets no NIMBUS_KV_TABLE."
  }
}

run "http_function_may_send_to_websocket_clients" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    websocket_api    = var.ws
  }

  assert {
    condition     = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : s.Sid] == ["Logs", "XRay", "ManageConnections"]
    error_message = "Any function given websocket_api may send to its clients."
  }
}

run "dead_letter_and_environment_key" {
  command = plan

  variables {
    description_file       = "tests/fixtures/hello.json"
    dead_letter_target_arn = "arn:aws:sns:us-east-1:123456789012:fixtures-dlq"
    kms_key_arn            = "arn:aws:kms:us-east-1:123456789012:key/env"
  }

  assert {
    condition = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : {
      s = s.Sid, a = flatten([s.Action]), r = flatten([s.Resource]) } if contains(["DeadLetter", "EnvironmentKey"], s.Sid)] == [
      { s = "DeadLetter", a = ["sns:Publish"], r = ["arn:aws:sns:us-east-1:123456789012:fixtures-dlq"] },
      { s = "EnvironmentKey", a = ["kms:Decrypt"], r = ["arn:aws:kms:us-east-1:123456789012:key/env"] },
    ]
    error_message = "An SNS dead-letter target gets sns:Publish on it; the environment key kms:Decrypt."
  }
  assert {
    condition     = aws_lambda_function.this.dead_letter_config[0].target_arn == "arn:aws:sns:us-east-1:123456789012:fixtures-dlq"
    error_message = "dead_letter_config points at the target."
  }
}

run "sqs_dead_letter_gets_send_message" {
  command = plan

  variables {
    description_file       = "tests/fixtures/hello.json"
    dead_letter_target_arn = "arn:aws:sqs:us-east-1:123456789012:fixtures-dlq"
  }

  assert {
    condition = [for s in jsondecode(data.aws_iam_policy_document.this.json).Statement : flatten([s.Action]) if s.Sid == "DeadLetter"][0] == [
      "sqs:SendMessage",
    ]
    error_message = "An SQS dead-letter target gets sqs:SendMessage."
  }
}

run "arm64_layer_package" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello-arm.json"
    package_type     = "layer"
  }

  assert {
    condition     = aws_lambda_function.this.architectures == tolist(["arm64"])
    error_message = "The architecture comes from the description."
  }
  assert {
    condition = (aws_lambda_layer_version.runtime[0].compatible_architectures == toset(["arm64"]) &&
      aws_lambda_layer_version.runtime[0].compatible_runtimes == toset(["provided.al2023"]) &&
      endswith(aws_lambda_layer_version.runtime[0].filename, "tests/fixtures/nimbus-runtime.zip") &&
    aws_lambda_layer_version.runtime[0].source_code_hash == filebase64sha256("tests/fixtures/nimbus-runtime.zip"))
    error_message = "The runtime layer is made from nimbus-runtime.zip for arm64 and provided.al2023."
  }
  assert {
    condition = (endswith(aws_lambda_function.this.filename, "tests/fixtures/hello-arm-code.zip") &&
    aws_lambda_function.this.source_code_hash == filebase64sha256("tests/fixtures/hello-arm-code.zip"))
    error_message = "With a layer the function deploys the code zip."
  }
}

run "existing_layer_is_used" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello-arm.json"
    package_type     = "layer"
    layer_arn        = "arn:aws:lambda:us-east-1:123456789012:layer:nimbus-runtime:7"
  }

  assert {
    condition     = length(aws_lambda_layer_version.runtime) == 0 && aws_lambda_function.this.layers == tolist(["arn:aws:lambda:us-east-1:123456789012:layer:nimbus-runtime:7"])
    error_message = "A given layer_arn is used and no layer is created."
  }
  assert {
    condition     = output.layer_arn == "arn:aws:lambda:us-east-1:123456789012:layer:nimbus-runtime:7"
    error_message = "layer_arn output is the layer in use."
  }
}
