"""What a reviewer asks of a cassette directory: list, show, diff, audit, rekey and prune."""
