# Airflow for docker-compose.yaml: the official image of the version pinned in requirements.txt,
# on the project's Python, plus the DAG's providers and libraries.
# The image already ships the Celery, FAB, PostgreSQL and Redis providers the compose stack runs on,
# so requirements.txt (what Cloud Composer needs) does not list them.
FROM apache/airflow:3.3.1-python3.11

COPY requirements.txt /requirements.txt
# Naming the image's own Airflow version makes pip fail loudly, rather than replace Airflow,
# if requirements.txt pins another one.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt
