"""Storage: models, engines, migrations. The only package that knows which database it runs on."""
