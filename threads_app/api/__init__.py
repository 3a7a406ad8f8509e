"""The REST API (`/api/v1/`) and the capture proxy (`/proxy/v1/`): thin JSON views over `capture`,
`listing`, `deletion` and the client, behind API tokens (`tokens`)."""
