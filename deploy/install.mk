# install.mk - `make install` and `make uninstall` (included by the Makefile).
#
#   make install [PREFIX=/usr/local] [DESTDIR=/stage] [FLAVOUR=rel|asan]
#
#   PREFIX/bin/                    spinq, spinq-worker, spinqd
#   PREFIX/share/spinq/web/        the dashboard, with the uPlot files its pages load
#                                  (spinqd looks there, beside PREFIX/bin/spinqd)
#   PREFIX/share/spinq/            spinq-run.sbatch, the Slurm executor's batch script (same lookup)
#   SYSCONF/spinq/                 spinqd.conf (only when absent: it is the admin's),
#                                  spinqd.conf.example, worker.env.example
#   PREFIX/lib/systemd/system/     spinqd.service, spinq-worker@.service (paths rewritten to PREFIX)
#   PREFIX/lib/sysusers.d/         spinq.conf (the `spinq` system user)
#
# SYSCONF is PREFIX/etc, or /etc when PREFIX is /usr. The migrations are not
# installed: spinqd carries them inside itself (server/migrate.c). uninstall
# removes the same list, spinqd.conf only while it is still the example, and
# then the spinq folders if they are empty.

PREFIX  ?= /usr/local
DESTDIR ?=
FLAVOUR ?= rel
BINDIR      := $(PREFIX)/bin
WEBDIR      := $(PREFIX)/share/spinq/web
SYSCONFDIR  := $(if $(filter /usr /usr/,$(PREFIX)),/etc,$(PREFIX)/etc)/spinq
UNITDIR     := $(PREFIX)/lib/systemd/system
SYSUSERSDIR := $(PREFIX)/lib/sysusers.d

# the dashboard as the pages load it: no package files, only the uPlot files
# that /vendor/uplot/ maps to (server/static.c) and uPlot's licence
WEB_FILES   := index.html style.css favicon.svg $(patsubst web/%,%,$(wildcard web/js/*.js web/js/*/*.js))
UPLOT_FILES := node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css node_modules/uplot/LICENSE
UNITS       := spinqd.service spinq-worker@.service
ETC_FILES   := spinqd.conf.example worker.env.example

# the units name /usr/local/bin and /usr/local/etc (the default PREFIX)
UNIT_SED := -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/local/etc/spinq/|$(SYSCONFDIR)/|g'

install: $(PROGRAMS:%=build/$(FLAVOUR)/%)
	@test -f web/node_modules/uplot/dist/uPlot.esm.js || \
	    echo "install: web/node_modules/uplot is missing (make deps): the dashboard goes without charts"
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(PROGRAMS:%=build/$(FLAVOUR)/%) $(DESTDIR)$(BINDIR)/
	@for f in $(WEB_FILES) $(UPLOT_FILES); do \
	    if [ -f web/$$f ]; then install -D -m 644 web/$$f $(DESTDIR)$(WEBDIR)/$$f || exit 1; fi; \
	done
	@echo "install -m 644 web/... $(DESTDIR)$(WEBDIR)/"
	install -d $(DESTDIR)$(SYSCONFDIR)
	install -m 644 $(ETC_FILES:%=deploy/%) $(DESTDIR)$(SYSCONFDIR)/
	@test -e $(DESTDIR)$(SYSCONFDIR)/spinqd.conf || \
	    install -v -m 644 deploy/spinqd.conf.example $(DESTDIR)$(SYSCONFDIR)/spinqd.conf
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	@for u in $(UNITS); do \
	    sed $(UNIT_SED) deploy/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 644 deploy/sysusers-spinq.conf $(DESTDIR)$(SYSUSERSDIR)/spinq.conf
	install -D -m 755 deploy/slurm/spinq-run.sbatch $(DESTDIR)$(PREFIX)/share/spinq/spinq-run.sbatch

uninstall:
	rm -f $(PROGRAMS:%=$(DESTDIR)$(BINDIR)/%)
	rm -f $(addprefix $(DESTDIR)$(WEBDIR)/,$(WEB_FILES) $(UPLOT_FILES))
	rm -f $(ETC_FILES:%=$(DESTDIR)$(SYSCONFDIR)/%)
	@if cmp -s deploy/spinqd.conf.example $(DESTDIR)$(SYSCONFDIR)/spinqd.conf; then \
	    rm -v $(DESTDIR)$(SYSCONFDIR)/spinqd.conf; \
	elif [ -e $(DESTDIR)$(SYSCONFDIR)/spinqd.conf ]; then \
	    echo "uninstall: $(DESTDIR)$(SYSCONFDIR)/spinqd.conf was edited: kept"; fi
	rm -f $(UNITS:%=$(DESTDIR)$(UNITDIR)/%) $(DESTDIR)$(SYSUSERSDIR)/spinq.conf
	rm -f $(DESTDIR)$(PREFIX)/share/spinq/spinq-run.sbatch
	@for d in $(DESTDIR)$(PREFIX)/share/spinq $(DESTDIR)$(SYSCONFDIR); do \
	    [ ! -d $$d ] || find $$d -depth -type d -empty -delete; \
	done
