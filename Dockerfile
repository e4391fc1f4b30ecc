# CNN Explorer for a class: Debian's Fashion-MNIST, the CPU requirements, a health check.
#   docker build -t cnn-explorer . && docker run -p 8501:8501 -v explorer-home:/data cnn-explorer
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends dataset-fashion-mnist fonts-wqy-microhei curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .

# runs, weights and the calibration cache live on a volume and survive a new container
ENV EXPLORER_HOME=/data \
    EXPLORER_SHARED=1 \
    EXPLORER_MAX_RUN_MINUTES=30 \
    EXPLORER_RUNS_PER_VISITOR=2 \
    EXPLORER_MAX_QUEUE=50
VOLUME /data
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD curl -fsS http://127.0.0.1:8501/_stcore/health | grep -q ok || exit 1
# `explorer serve` is `streamlit run app.py` with the run manager up first: a restart resumes the queue at once
CMD ["python", "-m", "explorer", "serve", "--server.port=8501", "--server.address=0.0.0.0"]
