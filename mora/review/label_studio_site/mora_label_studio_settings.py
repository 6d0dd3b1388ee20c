"""Label Studio's settings, with mora's guard on the files it serves (``mora_media_guard``).

Label Studio's settings module reads ``django.conf.settings`` while it is being imported (its Sentry
setup); Django then loads the module named by DJANGO_SETTINGS_MODULE a second time, and finds it half
imported. Named as Label Studio's own for that moment, it finds the half that is there, as it does
when Label Studio runs on its own settings; then the name is this module's again.
"""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "label_studio.core.settings.label_studio"
from label_studio.core.settings.label_studio import *  # noqa: E402, F403 - all of Label Studio's settings

os.environ["DJANGO_SETTINGS_MODULE"] = __name__
MIDDLEWARE = [*MIDDLEWARE, "mora_media_guard.ServeOnlyRegularFiles"]  # noqa: F405 - innermost: sees the view's answer
