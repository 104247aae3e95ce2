# Plan-only runs: mocked ARNs/URLs are known at plan (override_during = plan). Policy documents are mocked
# (their JSON is a fixed empty policy), so the runs assert the documents' inputs.
mock_provider "aws" {
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn    = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001"
      key_id = "00000000-0000-0000-0000-000000000001"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::app-sha-task-state-123456789012-us-east-1" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/app-sha-task-tasks" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:us-east-1:123456789012:app-sha-task-tasks"
      url = "https://sqs.us-east-1.amazonaws.com/123456789012/app-sha-task-tasks"
      id  = "https://sqs.us-east-1.amazonaws.com/123456789012/app-sha-task-tasks"
    }
  }
}

override_resource {
  target          = aws_sqs_queue.dead_letter
  override_during = plan
  values = {
    arn = "arn:aws:sqs:us-east-1:123456789012:app-sha-task-tasks-dlq"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/app-sha-task-tasks-dlq"
    id  = "https://sqs.us-east-1.amazonaws.com/123456789012/app-sha-task-tasks-dlq"
  }
}

variables {
  name                     = "app-sha-task"
  function_timeout_seconds = 2
}

run "defaults" {
  command = plan

  # Queue: visibility max(30, 6 x 2) = 30, DLQ wired through the separate redrive policy resource.
  assert {
    condition     = aws_sqs_queue.this.visibility_timeout_seconds == 30 && output.visibility_timeout_seconds == 30
    error_message = "Visibility timeout defaults to max(30, 6 x timeout) = 30."
  }
  assert {
    condition     = aws_sqs_queue.this.name == "app-sha-task-tasks" && aws_sqs_queue.dead_letter.name == "app-sha-task-tasks-dlq"
    error_message = "Queue names."
  }
  assert {
    condition     = aws_sqs_queue_redrive_policy.this.queue_url == "https://sqs.us-east-1.amazonaws.com/123456789012/app-sha-task-tasks"
    error_message = "The redrive policy belongs to the continuation queue."
  }
  assert {
    condition = jsondecode(aws_sqs_queue_redrive_policy.this.redrive_policy) == {
      deadLetterTargetArn = "arn:aws:sqs:us-east-1:123456789012:app-sha-task-tasks-dlq"
      maxReceiveCount     = 10
    }
    error_message = "The redrive policy targets the DLQ after 10 receives."
  }
  assert {
    condition = alltrue([for q in [aws_sqs_queue.this, aws_sqs_queue.dead_letter] :
      q.kms_master_key_id == "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001" &&
      q.message_retention_seconds == 1209600
    ])
    error_message = "Both queues use the module's key and keep messages 14 days."
  }

  # Bucket.
  assert {
    condition     = aws_s3_bucket.this.bucket == "app-sha-task-state-123456789012-us-east-1" && !aws_s3_bucket.this.force_destroy
    error_message = "Bucket name <name>-state-<account>-<region>, no force_destroy."
  }
  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "Versioning is on by default."
  }
  assert {
    condition = (
      one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms" &&
      one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001" &&
      one(aws_s3_bucket_server_side_encryption_configuration.this.rule).bucket_key_enabled
    )
    error_message = "SSE-KMS with the module's key and a bucket key."
  }
  assert {
    condition = (
      aws_s3_bucket_public_access_block.this.block_public_acls && aws_s3_bucket_public_access_block.this.block_public_policy &&
      aws_s3_bucket_public_access_block.this.ignore_public_acls && aws_s3_bucket_public_access_block.this.restrict_public_buckets
    )
    error_message = "All public access is blocked."
  }
  assert {
    condition     = aws_s3_bucket_ownership_controls.this.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs are disabled (BucketOwnerEnforced)."
  }
  assert {
    condition = (
      aws_s3_bucket_lifecycle_configuration.this.rule[1].id == "tasks-superseded-checkpoints" &&
      aws_s3_bucket_lifecycle_configuration.this.rule[1].status == "Enabled" &&
      aws_s3_bucket_lifecycle_configuration.this.rule[1].filter[0].prefix == "tasks/" &&
      aws_s3_bucket_lifecycle_configuration.this.rule[1].noncurrent_version_expiration[0].noncurrent_days == 7 &&
      aws_s3_bucket_lifecycle_configuration.this.rule[1].expiration[0].expired_object_delete_marker
    )
    error_message = "Noncurrent versions under tasks/ expire after 7 days and expired delete markers are removed."
  }
  assert {
    condition = (
      aws_s3_bucket_lifecycle_configuration.this.rule[0].status == "Enabled" &&
      aws_s3_bucket_lifecycle_configuration.this.rule[0].abort_incomplete_multipart_upload[0].days_after_initiation == 1 &&
      length(aws_s3_bucket_lifecycle_configuration.this.rule) == 2
    )
    error_message = "Incomplete multipart uploads are aborted after a day (whole bucket), and there are no other rules."
  }
  assert {
    condition     = length(aws_s3_bucket_policy.tls) == 1 && length(data.aws_iam_policy_document.tls) == 1
    error_message = "The TLS-only bucket policy is on by default."
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.tls[0].statement :
      s.effect == "Deny" && s.actions == toset(["s3:*"]) &&
      s.resources == toset(["arn:aws:s3:::app-sha-task-state-123456789012-us-east-1", "arn:aws:s3:::app-sha-task-state-123456789012-us-east-1/*"]) &&
      one(s.principals).identifiers == toset(["*"])
    ])
    error_message = "The bucket policy denies s3:* on the bucket and its objects to everyone..."
  }
  assert {
    condition = toset([
      for s in data.aws_iam_policy_document.tls[0].statement : "${one(s.condition).test} ${one(s.condition).variable} ${join(",", one(s.condition).values)}"
    ]) == toset(["Bool aws:SecureTransport false", "NumericLessThan s3:TlsVersion 1.2"])
    error_message = "... over plain HTTP or below TLS 1.2."
  }

  # Table.
  assert {
    condition = (
      aws_dynamodb_table.this.name == "app-sha-task-tasks" && aws_dynamodb_table.this.hash_key == "task_id" &&
      aws_dynamodb_table.this.range_key == null && aws_dynamodb_table.this.billing_mode == "PAY_PER_REQUEST" &&
      aws_dynamodb_table.this.attribute == toset([{ name = "task_id", type = "S" }])
    )
    error_message = "Task table: hash key task_id (S), on demand."
  }
  assert {
    condition     = aws_dynamodb_table.this.point_in_time_recovery[0].enabled
    error_message = "PITR is on."
  }
  assert {
    condition     = aws_dynamodb_table.this.server_side_encryption[0].enabled && aws_dynamodb_table.this.server_side_encryption[0].kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001"
    error_message = "The table is encrypted with the module's key."
  }
  assert {
    condition     = !anytrue([for t in aws_dynamodb_table.this.ttl : t.enabled])
    error_message = "No TTL: the runtime sets no expiry attribute."
  }

  # Key.
  assert {
    condition     = aws_kms_key.this[0].enable_key_rotation && aws_kms_key.this[0].deletion_window_in_days == 30 && aws_kms_alias.this[0].name == "alias/app-sha-task-durable-state"
    error_message = "A rotating key with an alias."
  }
  assert {
    condition = (
      length(data.aws_iam_policy_document.kms[0].statement) == 1 &&
      one(data.aws_iam_policy_document.kms[0].statement[0].principals).identifiers == toset(["arn:aws:iam::123456789012:root"])
    )
    error_message = "The key policy only delegates to this account's IAM."
  }

  # Outputs.
  assert {
    condition = output.environment == {
      NIMBUS_STATE_BUCKET   = "app-sha-task-state-123456789012-us-east-1"
      NIMBUS_TASK_TABLE     = "app-sha-task-tasks"
      NIMBUS_TASK_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/app-sha-task-tasks"
    }
    error_message = "environment holds exactly the three NIMBUS_* variables."
  }
  assert {
    condition = output.function_input == {
      bucket_name = "app-sha-task-state-123456789012-us-east-1"
      bucket_arn  = "arn:aws:s3:::app-sha-task-state-123456789012-us-east-1"
      table_name  = "app-sha-task-tasks"
      table_arn   = "arn:aws:dynamodb:us-east-1:123456789012:table/app-sha-task-tasks"
      queue_url   = "https://sqs.us-east-1.amazonaws.com/123456789012/app-sha-task-tasks"
      queue_arn   = "arn:aws:sqs:us-east-1:123456789012:app-sha-task-tasks"
      kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001"

      visibility_timeout_seconds = 30
    }
    error_message = "function_input is what the function module's durable_state takes."
  }
  assert {
    condition     = output.dead_letter_queue_arn == "arn:aws:sqs:us-east-1:123456789012:app-sha-task-tasks-dlq" && output.kms_key_arn == aws_kms_key.this[0].arn
    error_message = "DLQ and key outputs."
  }
}

run "visibility_follows_timeout" {
  command = plan

  variables {
    function_timeout_seconds = 60
  }

  assert {
    condition     = aws_sqs_queue.this.visibility_timeout_seconds == 360 && output.function_input.visibility_timeout_seconds == 360
    error_message = "Visibility timeout = 6 x 60 s."
  }
}

run "explicit_visibility_at_the_minimum" {
  command = plan

  variables {
    function_timeout_seconds   = 10
    visibility_timeout_seconds = 13
  }

  assert {
    condition     = aws_sqs_queue.this.visibility_timeout_seconds == 13
    error_message = "An explicit visibility timeout of timeout + 3 is used as given."
  }
}

run "explicit_visibility_too_small_fails" {
  command = plan

  variables {
    function_timeout_seconds   = 10
    visibility_timeout_seconds = 12
  }

  expect_failures = [aws_sqs_queue.this]
}

run "visibility_out_of_range_fails" {
  command = plan

  variables {
    visibility_timeout_seconds = 43201
  }

  expect_failures = [var.visibility_timeout_seconds]
}

run "timeout_out_of_range_fails" {
  command = plan

  variables {
    function_timeout_seconds = 901
  }

  expect_failures = [var.function_timeout_seconds]
}

run "tls_policy_off" {
  command = plan

  variables {
    enforce_tls = false
  }

  assert {
    condition     = length(aws_s3_bucket_policy.tls) == 0 && length(data.aws_iam_policy_document.tls) == 0
    error_message = "enforce_tls = false drops the bucket policy."
  }
}

run "settings_flow_through" {
  command = plan

  variables {
    bucket_name                        = "my-checkpoints"
    checkpoint_versioning              = false
    noncurrent_version_expiration_days = 3
    max_receive_count                  = 4
    force_destroy                      = true
    point_in_time_recovery             = false
    deletion_protection                = true
    tags                               = { team = "nimbus" }
  }

  assert {
    condition     = aws_s3_bucket.this.bucket == "my-checkpoints" && aws_s3_bucket.this.force_destroy && output.environment.NIMBUS_STATE_BUCKET == "my-checkpoints"
    error_message = "bucket_name and force_destroy flow through."
  }
  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Suspended"
    error_message = "checkpoint_versioning = false suspends versioning."
  }
  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.this.rule[1].noncurrent_version_expiration[0].noncurrent_days == 3
    error_message = "noncurrent_version_expiration_days flows through."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue_redrive_policy.this.redrive_policy).maxReceiveCount == 4
    error_message = "max_receive_count flows through."
  }
  assert {
    condition     = !aws_dynamodb_table.this.point_in_time_recovery[0].enabled && aws_dynamodb_table.this.deletion_protection_enabled
    error_message = "Table settings flow through."
  }
  assert {
    condition = alltrue([for t in [
      aws_s3_bucket.this.tags, aws_dynamodb_table.this.tags, aws_sqs_queue.this.tags, aws_sqs_queue.dead_letter.tags, aws_kms_key.this[0].tags
    ] : t == tomap({ team = "nimbus" })])
    error_message = "Tags go on every taggable resource."
  }
}

run "existing_key" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/99999999-9999-9999-9999-999999999999"
  }

  assert {
    condition     = length(aws_kms_key.this) == 0 && length(aws_kms_alias.this) == 0 && output.kms_key_arn == var.kms_key_arn
    error_message = "A given key is used instead of creating one."
  }
  assert {
    condition = (
      one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == var.kms_key_arn &&
      aws_dynamodb_table.this.server_side_encryption[0].kms_key_arn == var.kms_key_arn &&
      aws_sqs_queue.this.kms_master_key_id == var.kms_key_arn && aws_sqs_queue.dead_letter.kms_master_key_id == var.kms_key_arn &&
      output.function_input.kms_key_arn == var.kms_key_arn
    )
    error_message = "Everything is encrypted with the given key."
  }
}

run "aws_managed_encryption" {
  command = plan

  variables {
    create_kms_key = false
  }

  assert {
    condition     = length(aws_kms_key.this) == 0 && output.kms_key_arn == null && output.function_input.kms_key_arn == null
    error_message = "No key without create_kms_key or kms_key_arn."
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "AES256"
    error_message = "SSE-S3 without a key."
  }
  assert {
    condition     = aws_sqs_queue.this.sqs_managed_sse_enabled && aws_sqs_queue.dead_letter.sqs_managed_sse_enabled && aws_sqs_queue.this.kms_master_key_id == null
    error_message = "SQS-managed SSE without a key."
  }
  assert {
    condition     = aws_dynamodb_table.this.server_side_encryption[0].enabled # kms_key_arn is computed (aws/dynamodb)
    error_message = "The table falls back to DynamoDB's AWS-managed key."
  }
}

run "derived_bucket_name_too_long_fails" {
  command = plan

  variables {
    name = "a-rather-long-application-name-for-a-task-function-x"
  }

  expect_failures = [aws_s3_bucket.this]
}

run "uppercase_name_fails" {
  command = plan

  variables {
    name = "App"
  }

  expect_failures = [var.name]
}
