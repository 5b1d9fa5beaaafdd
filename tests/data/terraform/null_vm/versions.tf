terraform {
  required_version = ">= 1.0.0"

  required_providers {
    null = {
      source  = "vmbot.test/fixtures/null"
      version = "2.1.2"
    }
  }
}
