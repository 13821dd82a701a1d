"""Smart-classroom behaviour analytics: the microservices and their shared code."""
