"""Self-supervised and unsupervised representation learning: pretext tasks (rotation, relative
patch position, jigsaw, denoising / inpainting autoencoders), contrastive learning (SimCLR, MoCo),
clustering (DeepCluster, DAC, the transfer-learning + VAE recipe), each encoder judged by what its
features are worth (linear probe, k-NN, clustering against the classes, few-label fine-tuning)
beside random-init and supervised features. Public entry points:
:func:`dlapps.ssl.experiment.run_ssl`, :func:`dlapps.ssl.experiment.load_encoder`,
:class:`dlapps.ssl.config.SslConfig`, :data:`dlapps.ssl.methods.METHODS`; the losses and
metrics (:func:`dlapps.ssl.simclr.nt_xent`, :mod:`dlapps.ssl.metrics`) for your own models."""
