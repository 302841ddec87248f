"""The inference sidecar (``medobs exporter inference``) and the client helper.

TF Serving 2.10 reports latency in microseconds, only for requests that succeeded, with coarse
x1.8 buckets and no HELP lines, and a model that failed to load shows nothing at all. The
sidecar runs beside it in the inference pod and gives, under the catalog's names
(:mod:`medobs.core.catalog.inference`):

- :mod:`.status`: each model version's state and error code, and ``model_available``;
- :mod:`.bridge`: TF Serving's own metrics in seconds, bucket bounds kept (collected at scrape
  time by :mod:`.collector`, with the exporter's health);
- :mod:`.probe`: a golden :predict request at a low rate, timed end to end, by outcome;
- :mod:`.proxy`: optionally, a reverse proxy recording every request as the caller sees it;
- :mod:`.client`: the same request metrics recorded inside a Python service that calls the model.

A scrape of a healthy sidecar (buckets left out)::

    medobs_inference_up 1.0
    medobs_inference_model_available{model="resnet50_chest_xray"} 1.0
    medobs_inference_model_version_state{model="resnet50_chest_xray",state="AVAILABLE",version="1"} 1.0
    medobs_inference_model_version_error{error_code="OK",model="resnet50_chest_xray",version="1"} 1.0
    medobs_inference_server_requests_total{model="resnet50_chest_xray",status="OK"} 12.0
    medobs_inference_server_request_duration_seconds_count{api="predict",entrypoint="REST",model="resnet50_chest_xray"} 12.0
    medobs_inference_server_batched_runs_total 12.0
    medobs_inference_probe_requests_total{code="200",model="resnet50_chest_xray",outcome="ok"} 7.0
    medobs_inference_requests_total{code="500",model="resnet50_chest_xray",outcome="http_error"} 1.0
    medobs_inference_images_total{model="resnet50_chest_xray"} 10.0
"""
