data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  ssm_arn_prefix = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter"
  # Built from the name, not from the log group's attribute, so the rendered policy is known at plan.
  log_group_name = "/aws/lambda/${local.function_name}"
  log_group_arn  = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"

  durable_state       = local.is_task ? var.durable_state : null
  keyvalue            = local.uses_keyvalue ? var.keyvalue : null
  dead_letter_service = var.dead_letter_target_arn == null ? null : split(":", var.dead_letter_target_arn)[2]
  state_services      = sort([for s in ["dynamodb", "s3", "sqs"] : "${s}.${local.region}.amazonaws.com"])

  # One statement per capability the description and the inputs declare, each with a fixed sid; a capability
  # that is not declared has no statement at all. Only X-Ray uses "*" (its actions take no resource).
  policy_statements = concat(
    [{
      sid        = "Logs"
      actions    = ["logs:CreateLogStream", "logs:PutLogEvents"]
      resources  = ["${local.log_group_arn}:*"]
      conditions = []
    }],
    var.tracing_mode == "Active" ? [{
      sid        = "XRay"
      actions    = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources  = ["*"]
      conditions = []
    }] : [],
    length(local.d.ssm_parameters) > 0 ? [{
      sid        = "SsmParameters"
      actions    = ["ssm:GetParameters"]
      resources  = [for n in local.d.ssm_parameters : "${local.ssm_arn_prefix}/${trimprefix(n, "/")}"]
      conditions = []
    }] : [],
    length(local.d.ssm_paths) > 0 ? [{
      sid     = "SsmPaths"
      actions = ["ssm:GetParametersByPath"]
      # The path itself (how GetParametersByPath is authorized) and everything under it.
      resources = flatten([for p in local.d.ssm_paths : [
        "${local.ssm_arn_prefix}${p == "/" ? "/" : trimsuffix(p, "/")}",
        "${local.ssm_arn_prefix}${endswith(p, "/") ? p : "${p}/"}*",
      ]])
      conditions = []
    }] : [],
    local.uses_ssm && length(var.ssm_kms_key_arns) > 0 ? [{
      sid        = "SsmDecrypt"
      actions    = ["kms:Decrypt"]
      resources  = sort(distinct(var.ssm_kms_key_arns))
      conditions = [{ test = "StringEquals", variable = "kms:ViaService", values = ["ssm.${local.region}.amazonaws.com"] }]
    }] : [],
    local.keyvalue != null ? [{
      sid        = "KeyValue"
      actions    = ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
      resources  = [local.keyvalue.table_arn]
      conditions = [{ test = "ForAllValues:StringEquals", variable = "dynamodb:LeadingKeys", values = local.d.keyvalue_buckets }]
    }] : [],
    try(local.keyvalue.kms_key_arn, null) != null ? [{
      sid        = "KeyValueKey"
      actions    = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources  = [local.keyvalue.kms_key_arn]
      conditions = [{ test = "StringEquals", variable = "kms:ViaService", values = ["dynamodb.${local.region}.amazonaws.com"] }]
    }] : [],
    local.durable_state != null ? [
      {
        sid        = "TaskCheckpoints"
        actions    = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
        resources  = ["${local.durable_state.bucket_arn}/tasks/*"]
        conditions = []
      },
      {
        sid        = "TaskRecords"
        actions    = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
        resources  = [local.durable_state.table_arn]
        conditions = []
      },
      {
        sid        = "TaskQueue"
        actions    = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"]
        resources  = [local.durable_state.queue_arn]
        conditions = []
      },
    ] : [],
    try(local.durable_state.kms_key_arn, null) != null ? [{
      sid        = "StateKey"
      actions    = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources  = [local.durable_state.kms_key_arn]
      conditions = [{ test = "StringEquals", variable = "kms:ViaService", values = local.state_services }]
    }] : [],
    var.websocket_api != null ? [{
      sid     = "ManageConnections"
      actions = ["execute-api:ManageConnections"]
      resources = [
        "${var.websocket_api.execution_arn}/${var.websocket_api.stage_name}/POST/@connections/*",
        "${var.websocket_api.execution_arn}/${var.websocket_api.stage_name}/DELETE/@connections/*",
      ]
      conditions = []
    }] : [],
    var.dead_letter_target_arn != null ? [{
      sid        = "DeadLetter"
      actions    = [local.dead_letter_service == "sns" ? "sns:Publish" : "sqs:SendMessage"]
      resources  = [var.dead_letter_target_arn]
      conditions = []
    }] : [],
    var.kms_key_arn != null ? [{
      sid        = "EnvironmentKey"
      actions    = ["kms:Decrypt"]
      resources  = [var.kms_key_arn]
      conditions = []
    }] : [],
  )
}

data "aws_iam_policy_document" "assume_role" {
  statement {
    sid     = "LambdaAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# The function's only policy. X-Ray's PutTraceSegments/PutTelemetryRecords have no resource type and accept
# only "*"; every other statement names its ARNs.
data "aws_iam_policy_document" "this" {
  dynamic "statement" {
    for_each = local.policy_statements

    content {
      sid       = statement.value.sid
      effect    = "Allow"
      actions   = statement.value.actions
      resources = statement.value.resources

      dynamic "condition" {
        for_each = statement.value.conditions

        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = condition.value.values
        }
      }
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = local.function_name
  description          = "Execution role of the Nimbus ${local.d.kind} function ${local.function_name}"
  assume_role_policy   = data.aws_iam_policy_document.assume_role.json
  permissions_boundary = var.role_permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "nimbus-runtime"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}
