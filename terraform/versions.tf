terraform {
  required_version = ">= 1.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # By 6.x scheduling.max_run_duration and instance_termination_action are in the GA
      # provider (no google-beta needed).
      version = ">= 6.0, < 8.0"
    }
  }

  # No backend block here: state is local to each VM's working directory by default. When a
  # GCS bucket is configured, vm-creator writes a one-line `backend "gcs" {}` file beside this
  # one and passes bucket and prefix with `terraform init -backend-config=...`.
}

provider "google" {
  project = var.project
}
