{
    "name": "BJET API Synchronization",
    "summary": "Synchronize Odoo with any external REST API, inbound and outbound",
    "version": "18.0.1.0.0",
    "category": "Technical",
    "license": "LGPL-3",
    "author": "BJET",
    "maintainers": ["bjet"],
    "depends": ["base", "web", "mail", "base_automation"],
    "external_dependencies": {
        "python": ["requests", "cryptography", "python-dateutil", "pglast==7.22"],
    },
    "data": [
        "security/bj_api_sync_security.xml",
        "security/ir.model.access.csv",
        "data/bj_http_method_data.xml",
        "data/bj_api_sync_config_data.xml",
        "data/bj_api_inbound_data.xml",
        "data/bj_api_sync_job_data.xml",
        "views/bj_api_sync_config_views.xml",
        "views/bj_api_sync_config_line_views.xml",
        "views/bj_api_log_views.xml",
        "views/bj_api_sync_job_views.xml",
        "views/bjet_api_sync_menus.xml",
    ],
    "demo": [
        "demo/bj_api_sync_demo.xml",
    ],
    "assets": {
        "web.assets_backend": [
            "bjet_api_sync/static/src/**/*",
        ],
        "web.assets_tests": [
            "bjet_api_sync/static/tests/tours/**/*",
        ],
    },
    "uninstall_hook": "uninstall_hook",
    "installable": True,
    "application": True,
}
