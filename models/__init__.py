from . import bj_api_secret_mixin
from . import bj_http_method
from . import bj_api_sync_config
from . import bj_api_sync_config_line
from . import bj_api_sync_header
from . import bj_api_sync_param
from . import bj_api_log
