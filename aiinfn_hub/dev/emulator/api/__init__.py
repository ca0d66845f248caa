"""The emulator's HTTP side: routing, REST handlers, selectors, patches, admission, validation."""
