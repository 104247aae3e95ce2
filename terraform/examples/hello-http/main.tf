# The hello function behind an HTTP API: `GET /hello` as the manifest declares it.
# Everything about the function (routes, timeout, memory, architecture, what IAM grants) comes from
# `hello.json`, which `nimbus package` wrote beside the zips.

module "hello" {
  source = "../../modules/function"

  description_file       = "${var.package_dir}/hello.json"
  function_name          = "${var.name}-hello"
  package_type           = var.package_type
  logging_config_enabled = var.logging_config_enabled
  tags                   = var.tags
}

module "api" {
  source = "../../modules/http-api"

  name = var.name
  functions = {
    hello = {
      function_name = module.hello.function_name
      invoke_arn    = module.hello.invoke_arn
      routes        = module.hello.routes
    }
  }
  routes = var.routes
  tags   = var.tags
}
