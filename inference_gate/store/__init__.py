"""The cassette directory on disk: where each cassette lives, how it is written whole, and how it is listed."""
