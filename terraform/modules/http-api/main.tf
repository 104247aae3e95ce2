locals {
  # Every route key a function declares, mapped to that function's key in var.functions. The catch-all function
  # also declares "$default". (Duplicates are refused by the validation of var.functions.)
  declared = merge(
    { for fn, f in var.functions : "$default" => fn if f.catch_all },
    merge([for fn, f in var.functions : { for r in f.routes : r => fn }]...),
  )
  declared_route_keys = sort(keys(local.declared))

  selected_route_keys = var.routes == null ? local.declared_route_keys : sort(distinct(var.routes))
  undeclared_routes   = [for r in local.selected_route_keys : r if !contains(local.declared_route_keys, r)]

  # route key => function key, for the routes this API creates.
  routes = { for r in local.selected_route_keys : r => local.declared[r] if contains(local.declared_route_keys, r) }

  # Functions that serve at least one created route: each gets one integration.
  integrated_functions = { for fn, f in var.functions : fn => f if contains(values(local.routes), fn) }

  # The part of an invoking route's source ARN after "${execution_arn}/<stage>/": METHOD (ANY -> *) followed by
  # the path with every {param} / {proxy+} as *, or "$default" for the catch-all route.
  route_arn_suffix = {
    for r in keys(local.routes) : r => (
      r == "$default" ? "$default" : format(
        "%s%s",
        split(" ", r)[0] == "ANY" ? "*" : split(" ", r)[0],
        replace(trimprefix(r, "${split(" ", r)[0]} "), "/\\{[^}]*\\}/", "*"),
      )
    )
  }

  # One invoke permission per function and distinct source ARN (a permission has exactly one source ARN, so a
  # function with several routes gets several, each narrowed to its route).
  permissions = merge([
    for fn in keys(local.integrated_functions) : {
      for suffix in distinct([for r, f in local.routes : local.route_arn_suffix[r] if f == fn]) :
      "${fn} ${suffix}" => { function = fn, suffix = suffix }
    }
  ]...)

  access_log_format = jsonencode({
    requestId          = "$context.requestId"
    extendedRequestId  = "$context.extendedRequestId"
    requestTime        = "$context.requestTime"
    requestTimeEpoch   = "$context.requestTimeEpoch"
    ip                 = "$context.identity.sourceIp"
    userAgent          = "$context.identity.userAgent"
    httpMethod         = "$context.httpMethod"
    path               = "$context.path"
    protocol           = "$context.protocol"
    routeKey           = "$context.routeKey"
    stage              = "$context.stage"
    status             = "$context.status"
    responseLength     = "$context.responseLength"
    responseLatency    = "$context.responseLatency"
    integrationStatus  = "$context.integrationStatus"
    integrationLatency = "$context.integrationLatency"
    integrationError   = "$context.integrationErrorMessage"
    errorMessage       = "$context.error.message"
    xrayTraceId        = "$context.xrayTraceId"
  })
}

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  protocol_type = "HTTP"
  tags          = var.tags

  dynamic "cors_configuration" {
    for_each = var.cors_configuration == null ? [] : [var.cors_configuration]
    content {
      allow_origins     = cors_configuration.value.allow_origins
      allow_methods     = cors_configuration.value.allow_methods
      allow_headers     = cors_configuration.value.allow_headers
      expose_headers    = cors_configuration.value.expose_headers
      allow_credentials = cors_configuration.value.allow_credentials
      max_age           = cors_configuration.value.max_age
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.undeclared_routes) == 0
      error_message = "routes: ${join(", ", local.undeclared_routes)} ${length(local.undeclared_routes) == 1 ? "is" : "are"} not declared by any function. Declared routes: ${length(local.declared_route_keys) == 0 ? "(none)" : join(", ", local.declared_route_keys)}."
    }
    precondition {
      condition     = length(local.selected_route_keys) > 0
      error_message = "The API would have no route: no function declares one (set catch_all = true on one function, or declare routes), or var.routes is empty."
    }
  }
}

resource "aws_apigatewayv2_integration" "this" {
  for_each = local.integrated_functions

  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = each.value.invoke_arn
  payload_format_version = "2.0"
  description            = "Lambda function ${each.value.function_name}"
}

resource "aws_apigatewayv2_route" "this" {
  #checkov:skip=CKV_AWS_309:The default is a public API whose functions authenticate requests themselves (Nimbus routes are the app's public HTTP surface); set authorization_type = "AWS_IAM" to require SigV4.
  for_each = local.routes

  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.this[each.value].id}"
  authorization_type = var.authorization_type
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Retention is an input (access_log_retention_in_days, default 30 days per the module contract); a year of access logs is the caller's choice, not a default.
  #checkov:skip=CKV_AWS_158:Log groups are always encrypted at rest by CloudWatch Logs; a customer-managed key is optional (access_log_kms_key_arn) because its key policy must be written for the logs service by the caller.
  name              = "/aws/apigateway/${var.name}/access"
  retention_in_days = var.access_log_retention_in_days
  kms_key_id        = var.access_log_kms_key_arn
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "this" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = var.stage_name
  auto_deploy = true
  tags        = var.tags

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format          = local.access_log_format
  }

  default_route_settings {
    throttling_burst_limit = var.throttling_burst_limit
    throttling_rate_limit  = var.throttling_rate_limit
  }

  # Routes are deployed by auto_deploy; depend on them so the stage's first deployment includes them.
  depends_on = [aws_apigatewayv2_route.this]
}

resource "aws_lambda_permission" "this" {
  for_each = local.permissions

  statement_id  = "nimbus-http-${substr(sha1("${var.name} ${each.value.suffix}"), 0, 24)}"
  action        = "lambda:InvokeFunction"
  function_name = local.integrated_functions[each.value.function].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/${each.value.suffix}"
}
