output "bucket_name" {
  description = "Checkpoint bucket name (NIMBUS_STATE_BUCKET)."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "Checkpoint bucket ARN (the runtime uses objects under tasks/*)."
  value       = aws_s3_bucket.this.arn
}

output "table_name" {
  description = "Task table name (NIMBUS_TASK_TABLE)."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "Task table ARN."
  value       = aws_dynamodb_table.this.arn
}

output "queue_url" {
  description = "Continuation queue URL (NIMBUS_TASK_QUEUE_URL)."
  value       = aws_sqs_queue.this.url
}

output "queue_arn" {
  description = "Continuation queue ARN (the function module's SQS event source mapping reads it)."
  value       = aws_sqs_queue.this.arn
}

output "dead_letter_queue_url" {
  description = "Dead-letter queue URL."
  value       = aws_sqs_queue.dead_letter.url
}

output "dead_letter_queue_arn" {
  description = "Dead-letter queue ARN."
  value       = aws_sqs_queue.dead_letter.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the bucket, table and queues (null with AWS-managed encryption)."
  value       = local.kms_key_arn
}

output "visibility_timeout_seconds" {
  description = "Visibility timeout of the continuation queue."
  value       = aws_sqs_queue.this.visibility_timeout_seconds
}

output "environment" {
  description = "The task function's NIMBUS_* environment variables."
  value = {
    NIMBUS_STATE_BUCKET   = aws_s3_bucket.this.bucket
    NIMBUS_TASK_TABLE     = aws_dynamodb_table.this.name
    NIMBUS_TASK_QUEUE_URL = aws_sqs_queue.this.url
  }
}

output "function_input" {
  description = "The object the function module's durable_state input takes (plus visibility_timeout_seconds, which that module uses to check its timeout against the queue)."
  value = {
    bucket_name = aws_s3_bucket.this.bucket
    bucket_arn  = aws_s3_bucket.this.arn
    table_name  = aws_dynamodb_table.this.name
    table_arn   = aws_dynamodb_table.this.arn
    queue_url   = aws_sqs_queue.this.url
    queue_arn   = aws_sqs_queue.this.arn
    kms_key_arn = local.kms_key_arn
    # Not in the contract's durable_state object: lets the function module check timeout + 3 <= visibility.
    visibility_timeout_seconds = local.visibility_timeout_seconds
  }
}
