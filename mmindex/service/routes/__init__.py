"""The API's routers, one per resource: `search` (search, upload search, feedback), `concepts` (autocomplete,
teaching a concept, proposals to judge, the judgments as a file), `media` (segments, thumbnails, media files,
adding and removing media) and `index` (health, metrics). Each is made by `router(svc, ...)` from the shared
`Service` and talks only to the facade through it."""
