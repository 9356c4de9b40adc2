{
    "name": "BJET API Synchronization",
    "summary": "Synchronize Odoo with any external REST API, inbound and outbound",
    "version": "18.0.1.0.0",
    "category": "Technical",
    "license": "LGPL-3",
    "author": "bjet_api_sync contributors",
    "depends": ["base", "web", "mail", "base_automation"],
    "external_dependencies": {"python": ["requests", "cryptography", "dateutil"]},
    "data": [],
    "installable": True,
    "application": False,
}
