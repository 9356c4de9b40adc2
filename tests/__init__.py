from . import test_config
from . import test_security
from . import test_crypto
from . import test_log
from . import test_mapping
from . import test_demo
from . import test_inbound_routes
