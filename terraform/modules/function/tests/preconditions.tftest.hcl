# Bad inputs: each run changes ONE thing from a valid configuration, and plan must stop at the precondition
# (or variable validation) that names it. Same offline real-provider setup as policy.tftest.hcl.

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

run "wrong_architecture" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    architecture     = "arm64"
  }

  expect_failures = [aws_lambda_function.this]
}

run "matching_architecture_is_accepted" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello-arm.json"
    architecture     = "arm64"
  }
}

run "declared_ssm_parameter_not_guaranteed" {
  command = plan

  variables {
    description_file = "tests/fixtures/ingest.json"
    ssm_parameters   = ["/fixtures/api-token"]
    environment      = { UPSTREAM_URL = "https://upstream.example.com" }
  }

  expect_failures = [aws_lambda_function.this]
}

run "no_ssm_parameters_given" {
  command = plan

  variables {
    description_file = "tests/fixtures/ingest.json"
    environment      = { UPSTREAM_URL = "https://upstream.example.com" }
  }

  expect_failures = [aws_lambda_function.this]
}

run "required_env_var_missing" {
  command = plan

  variables {
    description_file = "tests/fixtures/ingest.json"
    ssm_parameters   = ["/fixtures/api-token", "/fixtures/db-url"]
    environment      = { DEBUG = "1" }
  }

  expect_failures = [aws_lambda_function.this]
}

run "event_function_with_everything_it_needs" {
  command = plan

  variables {
    description_file = "tests/fixtures/ingest.json"
    ssm_parameters   = ["/fixtures/api-token", "/fixtures/db-url"]
    environment      = { UPSTREAM_URL = "https://upstream.example.com" }
  }
}

run "task_without_durable_state" {
  command = plan

  variables {
    description_file = "tests/fixtures/sha-task.json"
  }

  expect_failures = [aws_lambda_function.this]
}

run "durable_state_on_a_function_that_is_no_task" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    durable_state    = var.durable
  }

  expect_failures = [aws_lambda_function.this]
}

run "continuation_visibility_timeout_too_short" {
  command = plan

  variables {
    description_file = "tests/fixtures/sha-task.json"
    durable_state    = merge(var.durable, { visibility_timeout_seconds = 30 })
    timeout          = 28
  }

  expect_failures = [aws_lambda_function.this]
}

run "continuation_visibility_timeout_just_enough" {
  command = plan

  variables {
    description_file = "tests/fixtures/sha-task.json"
    durable_state    = merge(var.durable, { visibility_timeout_seconds = 30 })
    timeout          = 27
  }
}

run "websocket_without_websocket_api" {
  command = plan

  variables {
    description_file = "tests/fixtures/chat.json"
    keyvalue         = var.kv
  }

  expect_failures = [aws_lambda_function.this]
}

run "buckets_without_keyvalue" {
  command = plan

  variables {
    description_file = "tests/fixtures/chat.json"
    websocket_api    = var.ws
  }

  expect_failures = [aws_lambda_function.this]
}

run "environment_collides_with_a_module_variable" {
  command = plan

  variables {
    description_file = "tests/fixtures/chat.json"
    websocket_api    = var.ws
    keyvalue         = var.kv
    environment      = { NIMBUS_KV_TABLE = "other-table" }
  }

  expect_failures = [aws_lambda_function.this]
}

run "nimbus_log_set_twice" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    log_level        = "debug"
    environment      = { NIMBUS_LOG = "info" }
  }

  expect_failures = [aws_lambda_function.this]
}

run "nimbus_log_through_environment_alone_is_fine" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    environment      = { NIMBUS_LOG = "info" }
  }

  assert {
    condition     = output.environment["NIMBUS_LOG"] == "info"
    error_message = "A NIMBUS_* variable the module does not set passes through."
  }
}

run "unknown_description_format" {
  command = plan

  variables {
    description_file = "tests/fixtures/future-format.json"
  }

  expect_failures = [aws_lambda_function.this]
}

run "layer_arn_with_zip_package" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    layer_arn        = "arn:aws:lambda:us-east-1:123456789012:layer:nimbus-runtime:7"
  }

  expect_failures = [aws_lambda_function.this]
}

run "reserved_lambda_variable_in_environment" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    environment      = { AWS_REGION = "eu-west-1" }
  }

  expect_failures = [var.environment]
}

run "unknown_architecture_name" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    architecture     = "aarch64"
  }

  expect_failures = [var.architecture]
}

run "dead_letter_target_is_not_sqs_or_sns" {
  command = plan

  variables {
    description_file       = "tests/fixtures/hello.json"
    dead_letter_target_arn = "arn:aws:lambda:us-east-1:123456789012:function:other"
  }

  expect_failures = [var.dead_letter_target_arn]
}

run "ssm_parameters_are_names_not_arns" {
  command = plan

  variables {
    description_file = "tests/fixtures/hello.json"
    ssm_parameters   = ["arn:aws:ssm:us-east-1:123456789012:parameter/fixtures/db-url"]
  }

  expect_failures = [var.ssm_parameters]
}

run "missing_description_file" {
  command = plan

  variables {
    description_file = "tests/fixtures/absent.json"
  }

  expect_failures = [var.description_file]
}

run "package_zip_not_beside_the_description" {
  command = plan

  variables {
    description_file = "tests/fixtures/missing-zip.json"
  }

  expect_failures = [aws_lambda_function.this]
}

run "description_lacks_a_key" {
  command = plan

  variables {
    description_file = "tests/fixtures/missing-key.json"
  }

  expect_failures = [aws_lambda_function.this]
}

run "unknown_function_kind" {
  command = plan

  variables {
    description_file = "tests/fixtures/unknown-kind.json"
  }

  expect_failures = [aws_lambda_function.this]
}

run "derived_function_name_is_invalid" {
  command = plan

  variables {
    description_file = "tests/fixtures/bad-app-name.json"
  }

  expect_failures = [aws_lambda_function.this]
}

run "invalid_derived_name_fixed_by_function_name" {
  command = plan

  variables {
    description_file = "tests/fixtures/bad-app-name.json"
    function_name    = "fixtures-example-hello"
  }
}
