-- Each service owns its database; none reads another's.
CREATE DATABASE signing;
CREATE DATABASE counter;
CREATE DATABASE notifier;
