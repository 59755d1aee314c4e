# Build, install and package pam-totp: `make`, `make install`, `make uninstall`, `make deb rpm`.
#
#   make                                  cargo build --release of the module and the CLI
#   make deps                             the distribution's build dependencies (apt-get/dnf)
#   make check-cargo                      which cargo is used; one line with the fix if it is missing or old
#   make install [DESTDIR=...] [PREFIX=/usr/local] [PAMDIR=...]
#   make uninstall                        same variables as install
#   make deb rpm                          target/packages/*.deb and *.rpm (see packaging/README.md)
#
# The PAM module goes where libpam looks for modules given by bare name, whatever PREFIX says:
# PAMDIR is detected (the directory holding pam_unix.so; on Debian the spelling its package uses,
# /lib/<triplet>/security on Debian 12, /usr/lib/<triplet>/security later; /usr/lib64/security on
# Fedora/RHEL). The configuration file stays in /etc, where the module reads it.

# packaging/cargo.sh checks the version (rust-version in Cargo.toml) and, under sudo, finds the
# invoking user's rustup toolchain and builds as that user.
CARGO       ?= sh packaging/cargo.sh
CARGO_FLAGS ?= --locked
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
DOCDIR      ?= $(DATADIR)/doc/pam-totp
LICENSEDIR  ?= $(DOCDIR)
SYSCONFDIR  ?= /etc
STATEDIR    ?= /var/lib/pam-totp
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
# pam-auth-update (Debian, Ubuntu) reads profiles from this directory only.
PAMCONFIGSDIR ?= /usr/share/pam-configs
# yes/no; auto = yes where pam-auth-update exists.
PAMCONFIGS  ?= auto
# Debian ships PAM modules 0644, RPM distributions 0755.
MODULE_MODE ?= $(if $(shell command -v dpkg 2>/dev/null),0644,0755)
# yes: strip the installed module and binary (the packages do this).
STRIP       ?= no
STRIP_PROG  ?= strip
# Set PAMDIR to skip detection.
ifeq ($(origin PAMDIR),undefined)
PAMDIR      := $(shell sh packaging/detect-pamdir.sh)
endif

RELEASE     := target/release
MODULE      := $(RELEASE)/libpam_totp.so
CLI         := $(RELEASE)/pam-totp
CONF_EXAMPLE := config/pam_totp.conf.example
# Extra documentation for /usr/share/doc: the guides, and the PAM and sshd examples.
DOCS        := $(wildcard docs/*.md)
EXAMPLES    := $(wildcard config/pam.d/*.example config/sshd_config.d/*.example)
# For a fleet (store = "ldap", docs/fleet.md): the directory schema, the slapd access rules and
# their install notes. Nothing here reads them; an administrator loads them into the directory
# server (the ACL after filling in its placeholders), so they go with the documentation, in
# $(DOCDIR)/ldap, uncompressed for ldapadd -f and sed.
LDAPFILES   := $(wildcard packaging/ldap/*)
INSTALL     ?= install

.PHONY: all build check-cargo deps install uninstall deb rpm packages check-packages clean-packages print-pamdir

all: build

build:
	$(CARGO) build --release $(CARGO_FLAGS) -p pam-totp -p pam-totp-cli
	@touch $(MODULE) $(CLI)

check-cargo:
	@$(CARGO) --check

print-pamdir:
	@echo $(PAMDIR)

# Rebuilt only when a source is newer than the binaries: after `make`, `sudo make install`
# installs without running cargo as root.
SOURCES := Cargo.toml Cargo.lock $(shell find pam_totp pam_totp_core enroll-cli -name '*.rs' -o -name Cargo.toml 2>/dev/null)
$(MODULE) $(CLI) &: $(SOURCES)
	$(CARGO) build --release $(CARGO_FLAGS) -p pam-totp -p pam-totp-cli
	@touch $(MODULE) $(CLI)

# Build dependencies (and the tools `make deb rpm` uses) from the distribution.
DEPS_APT ?= libpam0g-dev pkg-config gcc make gzip dpkg-dev rpm
DEPS_DNF ?= pam-devel pkgconf-pkg-config gcc make gzip rpm-build
deps:
	@if command -v apt-get >/dev/null; then \
		echo "apt-get install $(DEPS_APT)"; sh packaging/apt-install.sh $(DEPS_APT); \
	elif command -v dnf >/dev/null; then echo "dnf install $(DEPS_DNF)"; dnf install -y -q $(DEPS_DNF); \
	else echo "install the PAM development files (libpam.so) and a C linker by hand" >&2; fi

install: $(MODULE) $(CLI)
	@test -n "$(PAMDIR)" || { echo "PAM module directory not found: set PAMDIR=" >&2; exit 1; }
	$(INSTALL) -d -m 0755 $(DESTDIR)$(PAMDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/security \
		$(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR)
	# The state tells when and from where users log in: root's alone.
	$(INSTALL) -d -m 0700 $(DESTDIR)$(STATEDIR)
	$(INSTALL) -m $(MODULE_MODE) $(MODULE) $(DESTDIR)$(PAMDIR)/pam_totp.so
	$(INSTALL) -m 0755 $(CLI) $(DESTDIR)$(BINDIR)/pam-totp
	@if [ "$(STRIP)" = yes ]; then \
		echo "$(STRIP_PROG) $(DESTDIR)$(PAMDIR)/pam_totp.so $(DESTDIR)$(BINDIR)/pam-totp"; \
		$(STRIP_PROG) --strip-unneeded --remove-section=.comment --remove-section=.note $(DESTDIR)$(PAMDIR)/pam_totp.so && \
		$(STRIP_PROG) --remove-section=.comment --remove-section=.note $(DESTDIR)$(BINDIR)/pam-totp; \
	fi
	@# Man pages, gzipped (Debian requires it; rpmbuild leaves .gz alone).
	@for page in docs/pam-totp.1:man1 docs/pam_totp.conf.5:man5 docs/pam_totp.8:man8; do \
		src=$${page%%:*}; sect=$${page##*:}; \
		if [ -f "$$src" ]; then \
			$(INSTALL) -d -m 0755 "$(DESTDIR)$(MANDIR)/$$sect" || exit 1; \
			echo "gzip -9n < $$src > $(DESTDIR)$(MANDIR)/$$sect/$${src##*/}.gz"; \
			gzip -9n < "$$src" > "$(DESTDIR)$(MANDIR)/$$sect/$${src##*/}.gz" || exit 1; \
			chmod 0644 "$(DESTDIR)$(MANDIR)/$$sect/$${src##*/}.gz"; \
		else echo "warning: $$src missing, man page not installed" >&2; fi; \
	done
	@# Shell completions come from the built CLI itself.
	@for sh in bash:$(BASHCOMPDIR)/pam-totp zsh:$(ZSHCOMPDIR)/_pam-totp fish:$(FISHCOMPDIR)/pam-totp.fish; do \
		shell=$${sh%%:*}; dest=$(DESTDIR)$${sh#*:}; \
		$(INSTALL) -d -m 0755 "$${dest%/*}" || exit 1; \
		if $(CLI) completions $$shell > "$$dest.tmp" 2>/dev/null && [ -s "$$dest.tmp" ]; then \
			chmod 0644 "$$dest.tmp" && mv "$$dest.tmp" "$$dest" && echo "$(CLI) completions $$shell > $$dest"; \
		else rm -f "$$dest.tmp"; rmdir -p "$${dest%/*}" 2>/dev/null; echo "warning: '$(CLI) completions $$shell' failed, no $$shell completion installed" >&2; fi; \
	done
	@# Never replace an administrator's configuration on a source install.
	@dest=$(DESTDIR)$(SYSCONFDIR)/security/pam_totp.conf; \
	if [ -e "$$dest" ]; then echo "keeping existing $$dest"; \
	elif [ -f $(CONF_EXAMPLE) ]; then echo "install -m 0644 $(CONF_EXAMPLE) $$dest"; $(INSTALL) -m 0644 $(CONF_EXAMPLE) "$$dest"; \
	else echo "warning: $(CONF_EXAMPLE) missing, installing a comment-only $$dest" >&2; \
		printf '# pam_totp configuration (TOML). Every key is described in pam_totp.conf(5).\n' > "$$dest"; chmod 0644 "$$dest"; fi
	$(INSTALL) -m 0644 packaging/pam-totp.tmpfiles $(DESTDIR)$(TMPFILESDIR)/pam-totp.conf
	@if [ -f README.md ]; then echo "install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md"; \
		$(INSTALL) -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md; \
	else echo "warning: README.md missing, not installed" >&2; fi
	@for f in $(DOCS); do echo "install -m 0644 $$f $(DESTDIR)$(DOCDIR)/"; $(INSTALL) -m 0644 $$f $(DESTDIR)$(DOCDIR)/ || exit 1; done
	@if [ -n "$(EXAMPLES)" ]; then $(INSTALL) -d -m 0755 $(DESTDIR)$(DOCDIR)/examples; fi
	@for f in $(EXAMPLES); do echo "install -m 0644 $$f $(DESTDIR)$(DOCDIR)/examples/"; $(INSTALL) -m 0644 $$f $(DESTDIR)$(DOCDIR)/examples/ || exit 1; done
	@if [ -n "$(LDAPFILES)" ]; then $(INSTALL) -d -m 0755 $(DESTDIR)$(DOCDIR)/ldap; fi
	@for f in $(LDAPFILES); do echo "install -m 0644 $$f $(DESTDIR)$(DOCDIR)/ldap/"; $(INSTALL) -m 0644 $$f $(DESTDIR)$(DOCDIR)/ldap/ || exit 1; done
	@if [ "$(LICENSEDIR)" != none ]; then \
		lic=$$(ls LICENSE LICENSE.txt LICENSE-APACHE 2>/dev/null | head -n1); \
		[ -n "$$lic" ] || lic=/usr/share/common-licenses/Apache-2.0; \
		echo "install -m 0644 $$lic $(DESTDIR)$(LICENSEDIR)/LICENSE"; \
		$(INSTALL) -d -m 0755 $(DESTDIR)$(LICENSEDIR) && $(INSTALL) -m 0644 "$$lic" $(DESTDIR)$(LICENSEDIR)/LICENSE; \
	fi
	@if [ "$(PAMCONFIGS)" = yes ] || { [ "$(PAMCONFIGS)" = auto ] && PATH="$$PATH:/usr/sbin:/sbin" command -v pam-auth-update >/dev/null; }; then \
		echo "install -m 0644 packaging/debian/pam-configs-totp $(DESTDIR)$(PAMCONFIGSDIR)/totp"; \
		$(INSTALL) -d -m 0755 $(DESTDIR)$(PAMCONFIGSDIR) && \
		$(INSTALL) -m 0644 packaging/debian/pam-configs-totp $(DESTDIR)$(PAMCONFIGSDIR)/totp; \
		[ -n "$(DESTDIR)" ] || echo "note: 'pam-auth-update --enable totp' adds pam_totp to common-auth"; \
	fi

# Leaves /var/lib/pam-totp (users' state) and a configuration file that was changed.
uninstall:
	@test -n "$(PAMDIR)" || { echo "PAM module directory not found: set PAMDIR=" >&2; exit 1; }
	rm -f $(DESTDIR)$(PAMDIR)/pam_totp.so $(DESTDIR)$(BINDIR)/pam-totp \
		$(DESTDIR)$(MANDIR)/man1/pam-totp.1.gz $(DESTDIR)$(MANDIR)/man5/pam_totp.conf.5.gz \
		$(DESTDIR)$(MANDIR)/man8/pam_totp.8.gz \
		$(DESTDIR)$(BASHCOMPDIR)/pam-totp $(DESTDIR)$(ZSHCOMPDIR)/_pam-totp $(DESTDIR)$(FISHCOMPDIR)/pam-totp.fish \
		$(DESTDIR)$(TMPFILESDIR)/pam-totp.conf $(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(LICENSEDIR)/LICENSE \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS))) \
		$(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(EXAMPLES))) \
		$(addprefix $(DESTDIR)$(DOCDIR)/ldap/,$(notdir $(LDAPFILES)))
	@if [ -f $(DESTDIR)$(PAMCONFIGSDIR)/totp ] && cmp -s packaging/debian/pam-configs-totp $(DESTDIR)$(PAMCONFIGSDIR)/totp; then \
		if [ -z "$(DESTDIR)" ] && PATH="$$PATH:/usr/sbin:/sbin" command -v pam-auth-update >/dev/null; then \
			echo "pam-auth-update --package --remove totp"; PATH="$$PATH:/usr/sbin:/sbin" pam-auth-update --package --remove totp; fi; \
		echo "rm -f $(DESTDIR)$(PAMCONFIGSDIR)/totp"; rm -f $(DESTDIR)$(PAMCONFIGSDIR)/totp; \
	fi
	@dest=$(DESTDIR)$(SYSCONFDIR)/security/pam_totp.conf; \
	if [ -f "$$dest" ]; then \
		if { [ -f $(CONF_EXAMPLE) ] && cmp -s $(CONF_EXAMPLE) "$$dest"; } || \
		   printf '# pam_totp configuration (TOML). Every key is described in pam_totp.conf(5).\n' | cmp -s - "$$dest"; then \
			echo "rm -f $$dest"; rm -f "$$dest"; \
		else echo "keeping $$dest (changed locally)"; fi; \
	fi
	-@rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)/ldap $(DESTDIR)$(DOCDIR) $(DESTDIR)$(LICENSEDIR) $(DESTDIR)$(STATEDIR) 2>/dev/null || true

PKGDIR := target/packaging

# Debian package built from a `make install` tree with dpkg-deb (packaging/debian/build-deb.sh).
deb: build
	rm -rf $(PKGDIR)/deb-root
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(PKGDIR)/deb-root PREFIX=/usr \
		TMPFILESDIR=/usr/lib/tmpfiles.d DOCDIR=/usr/share/doc/libpam-totp LICENSEDIR=none \
		ZSHCOMPDIR=/usr/share/zsh/vendor-completions PAMCONFIGS=yes MODULE_MODE=0644 STRIP=yes
	sh packaging/debian/build-deb.sh $(PKGDIR)/deb-root target/packages

# RPM built with rpmbuild from packaging/rpm/pam-totp.spec, which runs `make install` itself.
rpm: build
	sh packaging/rpm/build-rpm.sh target/packages

packages: deb rpm

# The package test (as root: installs the .deb, adds a user and a PAM service, removes them).
check-packages:
	bash tests/packaging.sh

clean-packages:
	rm -rf $(PKGDIR) target/packages
