"""One module per resource; all handlers derive from base.BaseHandler."""
