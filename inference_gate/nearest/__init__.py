"""Why a replay missed: `diff` compares a missed request with recorded ones, `index` reads the folders."""
